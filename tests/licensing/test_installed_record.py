"""Installed verify and the runtime self-check judge every path the installer wrote (its RECORD).

The attack: change the release wheel in transit by adding a file beside the package — a ``.pth`` (runs at
every interpreter start and can read ``LM_PRIVATE_KEY``), a module, a data file — with RECORD regenerated
consistently. ``verify WHEEL`` refuses it; this file checks that once it is installed anyway, the installed
``liquid-memory verify`` and the first kernel call refuse too. The unit cases below cover the rules
(installer files, byte-code caches, console scripts, paths leaving site-packages) without an install.
"""

from __future__ import annotations

import pytest

from liquid_memory import errors as E
from liquid_memory.manifest.format import parse_manifest, signed_rows
from liquid_memory.manifest.verify import verify_path
from tests.licensing.helpers import make_installed_release, write_installed_record
from tests.licensing.release_env import clean_env, install, member, rewrite_wheel, run

# one interpreter of the tampered install: its verify command, then the first kernel call
VERIFY_THEN_FIRST_CALL = """
import contextlib, io, os, torch
print('PTH_RAN' if os.environ.get('ZZ_PTH_RAN') else 'PTH_SILENT')
from liquid_memory.cli import main
out = io.StringIO()
with contextlib.redirect_stdout(out):
    rc = main(['verify'])
print('VERIFY_RC', rc)
print(out.getvalue())
from liquid_memory import liquid_scan
x = torch.randn(1, 1, 8, 8)
liquid_scan(x, x, x, -x.abs(), backend='cpp')
print('KERNEL_RAN')
"""
ADDED = {
    # a .pth line starting with "import" runs at interpreter start, before any of our code
    "pth": ({"zz_evil.pth": b"import os; os.environ['ZZ_PTH_RAN'] = '1'\n"}, ["zz_evil.pth"]),
    "data_beside_package": ({"zz_data.json": b'{"x": 1}\n'}, ["zz_data.json"]),
    "module_and_script_via_data": (  # <name>.data/purelib -> site-packages, <name>.data/scripts -> bin/
        {"liquid_memory-0.1.0.data/purelib/zz_evil/__init__.py": b"X = 1\n",
         "liquid_memory-0.1.0.data/scripts/zz-evil": b"#!/bin/sh\necho evil\n"},
        ["zz_evil/__init__.py", "bin/zz-evil"],
    ),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(ADDED))
def test_installed_wheel_with_an_added_file_is_refused_by_verify_and_the_first_kernel_call(rel, tmp_path, case):
    added, installed_as = ADDED[case]
    extra = [(member(name), data) for name, data in added.items()]
    wheel = rewrite_wheel(rel.wheel, tmp_path / rel.wheel.name, lambda ms: [*ms, *extra], consistent_record=True)
    assert "LM208" in [p.code for p in verify_path(wheel, trusted=rel.trusted).problems]  # caught before install
    bin_dir = install(wheel, tmp_path / "venv")  # ... and installed anyway
    env = clean_env(LM_STATE_DIR=str(tmp_path / "state"), LM_PRIVATE_KEY=rel.licence())
    res = run([str(bin_dir / "python"), "-c", VERIFY_THEN_FIRST_CALL], env=env, cwd=tmp_path)
    assert "VERIFY_RC 1" in res.stdout and all(f"LM208 ManifestExtraFile/record: {p}" in res.stdout or
                                               f"LM208 ManifestExtraFile/outside: ../../../{p}" in res.stdout
                                               for p in installed_as), res.stdout + res.stderr  # fmt: skip
    assert "KERNEL_RAN" not in res.stdout and "LM208" in res.stderr, res.stdout + res.stderr
    assert any(p in res.stderr.strip().splitlines()[-1] for p in installed_as), res.stderr[-500:]
    if case == "pth":  # why it matters: the .pth ran first, in every process of that interpreter
        assert "PTH_RAN" in res.stdout


@pytest.fixture
def site(tmp_path, trusted_vendor):
    """A hand-made installed release whose signed files include the console-script entry points."""
    info = tmp_path / "site" / "liquid_memory-0.1.0.dist-info"
    info.mkdir(parents=True)
    (info / "entry_points.txt").write_text("[console_scripts]\nliquid-memory = liquid_memory.cli:main\n")
    make_installed_release(trusted_vendor, tmp_path / "site")
    return tmp_path / "site"


def _record(site, *extra: str) -> None:  # noqa: ANN001
    """RECORD as pip writes it: the signed files (and its own), plus ``extra``."""
    manifest = parse_manifest((site / "liquid_memory" / "MANIFEST.md").read_bytes())
    write_installed_record(site, [*(r.path for r in signed_rows(manifest)), *extra])


def _codes(site) -> set[tuple[str, str]]:  # noqa: ANN001
    return {(p.code, p.reason) for p in verify_path(site / "liquid_memory").problems}


def test_installer_output_is_allowed(site):
    (site / "liquid_memory" / "__pycache__").mkdir()
    (site / "liquid_memory" / "__pycache__" / "__init__.cpython-311.pyc").write_bytes(b"pyc")
    for name in ("REQUESTED", "direct_url.json"):
        (site / "liquid_memory-0.1.0.dist-info" / name).write_text("{}\n")
    _record(site, "liquid_memory/__pycache__/__init__.cpython-311.pyc", "liquid_memory-0.1.0.dist-info/REQUESTED",
            "liquid_memory-0.1.0.dist-info/direct_url.json", "../../../bin/liquid-memory")  # fmt: skip
    assert _codes(site) == set()


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("zz.pth", ("LM208", "record")),
        ("zz_mod/__init__.py", ("LM208", "record")),
        ("liquid_memory/zz_hidden.py", ("LM208", "record")),  # listed by RECORD, deleted since: still refused
        ("../../../bin/zz-evil", ("LM208", "outside")),
        ("../../../bin/lm-vendor", ("LM208", "outside")),  # a script the signed entry points do not name
        ("../../../lib/liquid-memory", ("LM208", "outside")),  # a script's name, but not in a scripts folder
        ("../../../share/zz/data.txt", ("LM208", "outside")),
        ("/usr/local/bin/zz-evil", ("LM208", "outside")),
        ("liquid_memory/__pycache__/zz_unsigned.cpython-311.pyc", ("LM208", "record")),
        ("liquid_memory/./x.py", ("LM206", "traversal")),
    ],
)
def test_every_record_path_must_be_signed_or_installer_output(site, extra, expected):
    assert _codes(site) == set()
    (site / "zz.pth").write_text("import os\n")
    (site / "zz_mod").mkdir()
    (site / "zz_mod" / "__init__.py").write_text("X = 1\n")
    _record(site, extra)
    assert _codes(site) == {expected}


def test_top_level_names_only_record_lists_are_refused_once(site):
    (site / "zz_mod").mkdir()
    for i in range(5):
        (site / "zz_mod" / f"m{i}.py").write_text("X = 1\n")
    _record(site, "zz_mod/m0.py")
    problems = verify_path(site / "liquid_memory").problems
    paths = sorted(p.detail.split(" ")[0].rstrip(":") for p in problems)
    assert paths == ["zz_mod", "zz_mod/m0.py"], [p.detail for p in problems]  # not one line per foreign file


def test_missing_record_is_refused_by_verify_and_by_the_loader(site):
    from liquid_memory.artifacts.installation import verified_rows

    (site / "liquid_memory-0.1.0.dist-info" / "RECORD").unlink()
    assert _codes(site) == {("LM201", "record")}
    with pytest.raises(E.ManifestInvalid) as info:  # the self-check before any native code loads
        verified_rows(site / "liquid_memory")
    assert info.value.reason == "record"
