"""A release wheel holds only what the release's own build produced from the tracked sources.

The attack: build a development release in a checkout (it leaves the plaintext kernel library, the Triton
sources, the vendor tool and the development identity in ``build/``), then a real release in the same
checkout — setuptools used to reuse ``build/lib`` and the vendor signed all of it. Now every wheel is built
in a fresh export of the tracked files, and ``finalize_wheel`` refuses, before signing, any member that is
not on the positive list of what a release wheel may contain.
"""

from __future__ import annotations

import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest
from liquid_memory_vendor import release
from liquid_memory_vendor.dev import DEV_KEY_FILE, DEV_PASSPHRASE_FILE
from liquid_memory_vendor.export import export_tree, modified_tracked_files
from liquid_memory_vendor.wheel_contents import development_identity_markers

from liquid_memory import errors as E
from liquid_memory.manifest.verify import verify_path
from tests.licensing.helpers import make_vendor
from tests.licensing.release_env import REPO, STALE_MARKER, member, rewrite_wheel

KERNEL_LIB = next((REPO / "src" / "liquid_memory").glob("_C*.so"))


@pytest.mark.slow
def test_real_release_after_a_dev_release_in_one_checkout_ships_nothing_in_the_clear(rel):
    dev = zipfile.ZipFile(rel.dev_wheel)
    dev_names = dev.namelist()
    # the development release did produce every hazard (so the real one had something to pick up) ...
    assert [n for n in dev_names if n.startswith("liquid_memory/_C") and n.endswith(".so")]
    assert [n for n in dev_names if n.startswith("liquid_memory_vendor/dev_identity/")]
    assert [n for n in dev_names if "/triton_scan/" in n]
    # ... and built it outside the checkout: no build/ or egg-info left there
    assert not rel.dev_left_build and not list((rel.checkout / "src").glob("*.egg-info"))
    # a stale build/lib holding those hazards (release_env.plant_stale_build) was in the checkout for the release
    assert (rel.checkout / "build" / "lib" / STALE_MARKER).is_file()
    z = zipfile.ZipFile(rel.wheel)
    names = z.namelist()
    markers = development_identity_markers()
    plaintext_lib = KERNEL_LIB.read_bytes()
    for name in names:
        data = z.read(name)
        assert not data.startswith(b"\x7fELF"), f"{name}: a native library in the clear"
        assert plaintext_lib[4096:8192] not in data, f"{name}: holds the plaintext kernel library"
        assert not any(m in data for m in markers), f"{name}: holds the development identity"
        assert b"@triton.jit" not in data, f"{name}: Triton kernel source"
    assert not [n for n in names if n.endswith(".so") or "vendor" in n or "dev_identity" in n or "triton" in n]
    assert "liquid_memory/zz_untracked.py" not in names  # an untracked file of the checkout is not exported
    assert STALE_MARKER not in names  # nor anything of the checkout's build/
    assert "differ from the commit" not in rel.release_stderr  # committed checkout: no dirty-tree warning
    report = verify_path(rel.wheel, trusted=rel.trusted)
    assert report.ok, report.to_dict()["problems"]


@pytest.fixture(scope="module")
def exported(rel, tmp_path_factory) -> Path:
    """The tree the shared release was built from, exported again from its checkout."""
    dest = tmp_path_factory.mktemp("export") / "src"
    export_tree(rel.checkout, dest)
    return dest


def _add(name: str, data: bytes):  # noqa: ANN202
    return lambda ms: [*ms, (member(name), data)]


def _change(name: str, change):  # noqa: ANN001, ANN202
    return lambda ms: [(i, change(d) if i.filename == name else d) for i, d in ms]


OTHER = make_vendor("another vendor")
INJECTED = {
    "plaintext_kernel_library": (_add("liquid_memory/_C.cpython-311-x86_64-linux-gnu.so", b"\x7fELF..."),
                                 "shared-library"),
    "versioned_shared_library": (_add("liquid_memory/libextra.so.1", b"x"), "shared-library"),
    "vendor_tool": (_add("liquid_memory_vendor/cli.py", b"print('vendor')\n"), "vendor-tool"),
    "dev_identity_by_name": (_add("liquid_memory/dev_identity/vendor.key", b"{}"), "dev-identity"),
    "windows_extension_module": (_add("liquid_memory/_C.pyd", b"MZ"), "shared-library"),
    "dev_identity_by_content": (_add("liquid_memory/notes.txt", DEV_PASSPHRASE_FILE.read_bytes()), "dev-identity"),
    "dev_key_file_renamed": (_add("liquid_memory/data/key.json", DEV_KEY_FILE.read_bytes()), "dev-identity"),
    "dev_key_in_trust_root": (
        _change("liquid_memory/licensing/_trust_root.py",
                lambda d: d.replace(b"}\n", b", '4a62e31359e195ac': 'isgvANVVYmKk6AGIdprSOMOq9NZxX4cT3YCsHrYMpvs'}\n")),
        "dev-identity",
    ),
    "other_vendor_in_trust_root": (
        _change("liquid_memory/licensing/_trust_root.py",
                lambda d: d.replace(b"}\n", f", {OTHER.kid!r}: {OTHER.trust_entry().split(':')[1]!r}}}\n".encode())),
        "trust-root",
    ),
    "triton_source_by_name": (_add("liquid_memory/ops/triton_scan/kernels.py", b"x = 1\n"), "triton-source"),
    "triton_source_by_content": (_add("liquid_memory/ops/fast.py", b"import triton\n@triton.jit\ndef k(): pass\n"),
                                 "triton-source"),
    "pth_file": (_add("zz_evil.pth", b"import os\n"), "outside-package"),
    "data_tree": (_add("liquid_memory-0.1.0.data/purelib/zz.py", b"x = 1\n"), "outside-package"),
    "untracked_module": (_add("liquid_memory/zz_untracked.py", b"UNTRACKED = True\n"), "not-listed"),
    "edited_source": (_change("liquid_memory/errors.py", lambda d: d + b"\n# edited\n"), "not-listed"),
    "unknown_top_level": (_add("zz_module.py", b"x = 1\n"), "not-listed"),
    "extra_dist_public_file": (_add("liquid_memory/dist_public/extra.bin", b"\0" * 16), "not-listed"),
    "vendor_entry_point": (
        _change("liquid_memory-0.1.0.dist-info/entry_points.txt",
                lambda d: d + b"lm-vendor = liquid_memory_vendor.cli:main\n"),
        "dist-info",
    ),
    "development_metadata": (
        _change("liquid_memory-0.1.0.dist-info/METADATA",
                lambda d: d.replace(b"Summary: ", b"Summary: DEVELOPMENT BUILD (trusts the public identity). ")),
        "dist-info",
    ),
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(INJECTED))
def test_finalize_refuses_a_release_wheel_off_the_positive_list_before_signing(rel, exported, tmp_path, case):
    edit, reason = INJECTED[case]
    wheel = rewrite_wheel(rel.wheel, tmp_path / rel.wheel.name, edit)
    before = wheel.read_bytes()
    with pytest.raises(E.ReleaseContentRefused) as info:
        release.finalize_wheel(rel.vendor, wheel, sequence=rel.sequence, source=exported)
    assert info.value.reason == reason and info.value.code == "LM402", info.value
    assert wheel.read_bytes() == before  # nothing signed, nothing rewritten


@pytest.mark.slow
def test_a_refused_release_wheel_never_reaches_the_wheel_dir(rel, tmp_path, monkeypatch):
    """``release_wheel`` end to end (export, build, check) with the build swapped for one that leaks a library."""
    leaky = rewrite_wheel(rel.wheel, tmp_path / rel.wheel.name, INJECTED["plaintext_kernel_library"][0])

    def build(vk, source, out_dir, *, release_build):  # noqa: ANN001, ANN202 - release.build_wheel's signature
        assert release_build and (source / "setup.py").is_file() and not (source / "build").exists()
        return Path(shutil.copy(leaky, out_dir / leaky.name))

    monkeypatch.setattr(release, "build_wheel", build)
    with pytest.raises(E.ReleaseContentRefused):
        release.release_wheel(rel.vendor, rel.checkout, tmp_path / "dist", release_build=True, sequence=rel.sequence)
    assert not (tmp_path / "dist").exists() or not list((tmp_path / "dist").iterdir())


@pytest.mark.slow
def test_finalize_signs_the_unchanged_release_wheel(rel, exported, tmp_path):
    """The positive control: the genuine wheel passes the same check and verifies after re-signing."""
    wheel = shutil.copy(rel.wheel, tmp_path / rel.wheel.name)
    release.finalize_wheel(rel.vendor, Path(wheel), sequence=rel.sequence, source=exported)
    assert verify_path(wheel, trusted=rel.trusted).ok
    with pytest.raises(E.UsageError):  # a release is never signed without the tree it came from
        release.finalize_wheel(rel.vendor, Path(wheel), sequence=rel.sequence)


def _git_repo(root: Path) -> Path:
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    (root / "src" / "pkg").mkdir(parents=True)
    (root / "src" / "pkg" / "a.py").write_text("A = 1\n")
    (root / "tool.sh").write_text("#!/bin/sh\n")
    (root / "tool.sh").chmod(0o755)
    (root / ".gitignore").write_text("build/\n*.so\n")
    for cmd in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "x"]):
        subprocess.run([*git, *cmd], check=True, capture_output=True)
    return root


def test_export_copies_tracked_files_and_release_outputs_only(tmp_path):
    repo = _git_repo(tmp_path / "repo")
    (repo / "build" / "lib" / "pkg").mkdir(parents=True)
    (repo / "build" / "lib" / "pkg" / "_C.so").write_bytes(b"\x7fELF")  # a stale build output (ignored)
    (repo / "src" / "pkg" / "_C.so").write_bytes(b"\x7fELF")  # an in-place build (ignored)
    (repo / "src" / "pkg" / "new.py").write_text("NEW = 1\n")  # untracked
    (repo / "dist_public" / "kernels").mkdir(parents=True)
    (repo / "dist_public" / "kernels" / "lib.so.enc").write_bytes(b"enc")  # this release's output
    (repo / "MANIFEST.md").write_text("signed\n")
    (repo / "src" / "pkg" / "a.py").write_text("A = 2\n")  # modified tracked file: exported as it is
    copied = export_tree(repo, tmp_path / "out")
    assert sorted(copied) == [".gitignore", "MANIFEST.md", "dist_public/kernels/lib.so.enc", "src/pkg/a.py", "tool.sh"]
    assert (tmp_path / "out" / "src" / "pkg" / "a.py").read_text() == "A = 2\n"
    assert (tmp_path / "out" / "tool.sh").stat().st_mode & 0o111
    assert modified_tracked_files(repo) == ["src/pkg/a.py"]


def test_export_refuses_what_it_cannot_copy_faithfully(tmp_path):
    with pytest.raises(E.UsageError, match="not a git checkout"):
        export_tree(tmp_path, tmp_path / "out")
    repo = _git_repo(tmp_path / "repo")
    (repo / "link.py").symlink_to(repo / "src" / "pkg" / "a.py")
    subprocess.run(["git", "-C", str(repo), "add", "link.py"], check=True, capture_output=True)
    with pytest.raises(E.UsageError, match="symlink"):
        export_tree(repo, tmp_path / "out2")
    (repo / "link.py").unlink()
    subprocess.run(["git", "-C", str(repo), "rm", "-q", "--cached", "link.py"], check=True, capture_output=True)
    head = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], check=True, capture_output=True, text=True)
    gitlink = ["git", "-C", str(repo), "update-index", "--add", "--cacheinfo", f"160000,{head.stdout.strip()},sub"]
    subprocess.run(gitlink, check=True, capture_output=True)  # a submodule entry
    with pytest.raises(E.UsageError, match="submodule"):
        export_tree(repo, tmp_path / "out-sub")
    subprocess.run(["git", "-C", str(repo), "rm", "-q", "--cached", "sub"], check=True, capture_output=True)
    (repo / "dist_public").mkdir()
    (repo / "dist_public" / "escape").symlink_to("/etc/passwd")
    with pytest.raises(E.UsageError, match="not a regular file"):
        export_tree(repo, tmp_path / "out3")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(E.UsageError, match="not empty"):
        export_tree(repo, tmp_path / "full")
