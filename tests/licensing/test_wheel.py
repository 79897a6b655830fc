"""A release wheel, built once per session the way ``lm-vendor release`` builds it, attacked as a customer would.

The venv reuses the already-installed torch & co. through a ``.pth`` file pointing at the build
interpreter's site-packages (reinstalling torch would take minutes); ``liquid_memory`` itself comes
only from the wheel — the flow checks that. The kernel library encrypted into the release is this
checkout's build of ``csrc/`` (compiling it again would cost minutes and test nothing new).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
import venv
import zipfile
from pathlib import Path

import pytest
import torch
from liquid_memory_vendor.issue import issue_licence

from liquid_memory.manifest.verify import verify_path
from tests.licensing.helpers import make_vendor
from tests.numerics import rel_err

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow

FLOW = r"""
import json, os, sys, time, torch
import liquid_memory
from liquid_memory import errors, liquid_scan
from liquid_memory.ops import cpp
out = {"package": liquid_memory.__file__, "has_ops_before": hasattr(torch.ops.liquid_memory, "liquid_scan_fwd")}
try:
    import liquid_memory._C
    out["plain_C"] = True
except ImportError:
    out["plain_C"] = False
xs = torch.load(sys.argv[1])
def attempt(fn):
    try:
        fn()
        return "ran"
    except errors.LiquidMemoryError as exc:
        return exc.code
key = os.environ.pop("LM_PRIVATE_KEY", "")
import liquid_memory.ops.licensed  # registers the licence-checking ops an exported graph refers to
exported = torch.export.load(sys.argv[4]).module()
out["exported_graph_unlicensed"] = attempt(lambda: exported(*xs))
for name, value in json.loads(sys.argv[2]).items():   # licences that must not run the kernel
    if value:
        os.environ["LM_PRIVATE_KEY"] = value
    out[name] = [attempt(lambda: cpp.cpp_liquid_scan(*xs)), attempt(lambda: liquid_scan(*xs, backend="cpp")),
                 attempt(lambda: liquid_scan(*xs, backend="aoti"))]
    os.environ.pop("LM_PRIVATE_KEY", None)
    from liquid_memory.licensing import reset_cache; reset_cache()
from liquid_memory.artifacts import native
out["decrypted_before_licence"] = bool(native.first_load_seconds)
out["has_ops_unlicensed"] = hasattr(torch.ops.liquid_memory, "liquid_scan_fwd")
os.environ["LM_PRIVATE_KEY"] = key
t0 = time.perf_counter()
o, s = liquid_scan(*xs, backend="cpp", output_final_state=True)
out["first_call_s"] = time.perf_counter() - t0
out["first_load"] = native.first_load_seconds
t0 = time.perf_counter()
liquid_scan(*xs, backend="cpp")
out["second_call_s"] = time.perf_counter() - t0
ref, ref_s = liquid_scan(*xs, backend="reference", output_final_state=True)
with torch.no_grad():
    o_aoti, s_aoti = liquid_scan(*xs, backend="aoti", output_final_state=True)
o_exp = exported(*xs)
torch.save({"o": o, "s": s, "ref": ref, "ref_s": ref_s, "o_aoti": o_aoti, "s_aoti": s_aoti, "o_exp": o_exp},
           sys.argv[3])
print(json.dumps(out))
"""


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, **kw)


def _copy_checkout(tmp: Path) -> Path:
    """The checkout's tracked + untracked-not-ignored files (no build outputs, no venvs)."""
    src = tmp / "src"
    listing = _run(["git", "-C", str(REPO), "ls-files", "-co", "--exclude-standard"])
    assert listing.returncode == 0, listing.stderr
    for rel in listing.stdout.split():
        if (REPO / rel).is_file():
            (src / rel).parent.mkdir(parents=True, exist_ok=True)
            (src / rel).write_bytes((REPO / rel).read_bytes())
    return src


def _install(wheel: Path, where: Path) -> Path:
    venv.create(where, with_pip=False)
    site = next((where / "lib").glob("python3*/site-packages"))
    # torch & co. from this interpreter's site-packages dirs (listed after the venv's own, so the wheel's
    # liquid_memory wins; .pth files inside them — e.g. an editable install's finder — are not executed)
    shared = [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]
    (site / "shared.pth").write_text("\n".join(shared) + "\n")
    res = _run([sys.executable, "-m", "pip", "--python", str(where / "bin" / "python"), "install", "--no-deps",
                "--no-index", "--no-compile", "-q", str(wheel)])  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return where / "bin"


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LM_") and k != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", MAX_JOBS="2", **extra)
    return env


class Release:
    def __init__(self, tmp: Path) -> None:
        from liquid_memory_vendor import release
        from liquid_memory_vendor.dev import dev_vendor

        from liquid_memory.artifacts.crypto import decrypt, read_key_id
        from liquid_memory.ops.cpp import cpp_available

        assert cpp_available()
        self.vendor = make_vendor("Release Vendor")
        self.home = tmp / "home"
        self.home.mkdir()
        src = _copy_checkout(tmp)
        meta = json.loads((src / "dist_public" / "AOTI_METADATA.json").read_text())
        entry = next(a for a in meta["artifacts"] if a["dtype"] == "float32" and a["head_dim"] == 64)
        blob = (src / entry["file"]).read_bytes()
        plain = decrypt(blob, dev_vendor().content_keys[read_key_id(blob)], name=entry["name"], version=meta["version"])
        t0 = time.perf_counter()
        kernel_lib = release.find_kernel_library(REPO)
        release.write_dist_public(self.vendor, src, [(entry, plain)], self.home, kernel_library=kernel_lib)
        self.sequence = release.next_sequence(self.home)
        release.sign_manifest(self.vendor, src, sequence=self.sequence)
        self.wheel = release.build_wheel(self.vendor, src, tmp / "out", release_build=True)
        release.finalize_wheel(self.vendor, self.wheel, sequence=self.sequence)
        self.build_s = time.perf_counter() - t0
        self.bin = _install(self.wheel, tmp / "venv")
        self.site = next((tmp / "venv" / "lib").glob("python3*/site-packages"))
        self.pkg = self.site / "liquid_memory"
        self.cwd = tmp / "elsewhere"
        self.cwd.mkdir()
        self.trusted = {self.vendor.kid: self.vendor.public_key}
        print(
            f"\nrelease wheel build + sign {self.build_s:.1f} s, "
            f"install {time.perf_counter() - t0 - self.build_s:.1f} s"
        )

    def cli(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return _run([str(self.bin / "liquid-memory"), *args], cwd=self.cwd, env=_clean_env(**env))

    def licence(self, **kw) -> str:
        kw.setdefault("expires", int(time.time()) + 3600)
        kw.setdefault("features", ["kernel"])
        return issue_licence(self.vendor, licensee="Release Customer", **kw)


@pytest.fixture(scope="session")
def rel(tmp_path_factory) -> Release:
    return Release(tmp_path_factory.mktemp("release"))


def test_release_wheel_has_no_clear_kernel_no_vendor_tool_and_verifies(rel, monkeypatch):
    names = zipfile.ZipFile(rel.wheel).namelist()
    assert not [n for n in names if n.endswith(".so")], "a kernel library in the clear"
    assert any(n.startswith("liquid_memory/dist_public/kernels/") and n.endswith(".so.enc") for n in names)
    assert not [n for n in names if "liquid_memory_vendor" in n or "dev_identity" in n or "PASSPHRASE" in n]
    assert not [n for n in names if "triton_scan" in n], "Triton kernel source in a release wheel"
    assert not [n for n in names if n.startswith("benchmarks/")] and "liquid_memory/bench/run.py" in names  # research
    assert "lm-vendor" not in zipfile.ZipFile(rel.wheel).read(next(n for n in names if "entry_points" in n)).decode()
    assert "-none-any" not in rel.wheel.name  # platform-specific: it carries a (encrypted) native library
    report = verify_path(rel.wheel, trusted=rel.trusted)
    assert report.ok and report.manifest.scope == "wheel", report.to_dict()["problems"]
    assert report.development  # this checkout is a development build: its verify says so
    listed = {r.path for r in report.rows}
    assert {n for n in names if not n.endswith("RECORD")} == listed | {"liquid_memory/MANIFEST.md"}
    res = rel.cli("verify")  # the installed package verifies itself, every file
    assert res.returncode == 0 and "DEVELOPMENT" not in res.stdout, res.stdout + res.stderr
    doc = json.loads(rel.cli("license", "--json", LM_PRIVATE_KEY=rel.licence()).stdout)
    assert doc["valid"] and doc["build"] == "release"
    probe = ("import torch\nfrom liquid_memory import liquid_scan\nx = torch.randn(1, 1, 8, 8)\n"
             "liquid_scan(x, x, x, -x.abs(), backend='triton')")  # fmt: skip
    res = _run([str(rel.bin / "python"), "-c", probe], cwd=rel.cwd, env=_clean_env(LM_PRIVATE_KEY=rel.licence()))
    assert res.returncode == 1 and "BackendUnavailable" in res.stderr and "not part of this release" in res.stderr


def test_release_install_runs_kernels_only_under_a_kernel_licence(rel, tmp_path):
    from liquid_memory_vendor.dev import issue_dev_licence

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(1, 2, 100, 64, generator=g) for _ in range(3))  # d=64: the release's aoti variant
    xs = (q, k, v, -torch.rand(1, 2, 100, 64, generator=g))
    torch.save(xs, tmp_path / "xs.pt")

    class Scan(torch.nn.Module):
        def forward(self, q, k, v, log_a):
            from liquid_memory import liquid_scan

            return liquid_scan(q, k, v, log_a, backend="cpp")[0]

    # exported here (development build, no licence needed to trace), run later in the release install
    torch.export.save(torch.export.export(Scan(), xs, strict=False), tmp_path / "scan.pt2")
    now = int(time.time())
    refused = {
        "no_licence": "",
        "proxy_only": rel.licence(features=["proxy"]),
        "expired": rel.licence(expires=now - 10),
        "dev_identity": issue_dev_licence(("kernel",)),
    }
    res = _run([str(rel.bin / "python"), "-c", FLOW, str(tmp_path / "xs.pt"), json.dumps(refused),
                str(tmp_path / "out.pt"), str(tmp_path / "scan.pt2")], cwd=rel.cwd,
               env=_clean_env(LM_PRIVATE_KEY=rel.licence()))  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert str(rel.site) in out["package"]
    assert out["plain_C"] is False and out["has_ops_before"] is False and out["has_ops_unlicensed"] is False
    assert out["no_licence"] == ["LM101"] * 3
    assert out["proxy_only"] == ["LM108"] * 3  # FeatureNotLicensed
    assert out["expired"] == ["LM106"] * 3  # LicenseExpired, refused before any decryption
    assert out["dev_identity"] == ["LM104"] * 3  # the development identity means nothing to a release
    assert out["decrypted_before_licence"] is False
    got = torch.load(tmp_path / "out.pt")
    assert rel_err(got["o"], got["ref"]) < 1e-4 and rel_err(got["s"], got["ref_s"]) < 1e-4
    assert rel_err(got["o_aoti"], got["ref"]) < 1e-4 and rel_err(got["s_aoti"], got["ref_s"]) < 1e-4
    assert out["exported_graph_unlicensed"] == "LM101"  # a graph exported once refuses without a key
    assert rel_err(got["o_exp"], got["ref"]) < 1e-4
    print(f"\nrelease first call {out['first_call_s'] * 1e3:.0f} ms (verify+decrypt "
          f"{out['first_load']['verify_decrypt'] * 1e3:.0f} ms, load {out['first_load']['load'] * 1e3:.0f} ms), "
          f"second call {out['second_call_s'] * 1e3:.1f} ms")  # fmt: skip


def _tampered(rel: Release, tmp: Path, name: str, edit) -> Path:  # noqa: ANN001
    out = tmp / f"{name}.whl"
    with zipfile.ZipFile(rel.wheel) as src, zipfile.ZipFile(out, "w") as dst:
        members = [(i, src.read(i)) for i in src.infolist()]
        for info, data in edit(members):
            dst.writestr(info, data)
    return out


def _member(name: str, mode: int = stat.S_IFREG | 0o644) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = mode << 16
    return info


def _replace(target: str, change):  # noqa: ANN001
    return lambda ms: [(i, change(d) if i.filename == target else d) for i, d in ms]


CASES = {
    "changed_py": (
        _replace("liquid_memory/ops/dispatch.py", lambda d: d.replace(b"require_feature", b"require_featurX")),
        "LM210",
    ),  # same size, other bytes: the hash catches it
    "added_pth": (lambda ms: [*ms, (_member("zz_evil.pth"), b"import os\n")], "LM208"),
    "trust_root_plus_dev_key": (
        _replace(
            "liquid_memory/licensing/_trust_root.py",
            lambda d: d.replace(b"}\n", b", '4a62e31359e195ac': 'isgvANVVYmKk6AGIdprSOMOq9NZxX4cT3YCsHrYMpvs'}\n"),
        ),
        "LM209",
    ),  # fmt: skip
    "fifo_member": (lambda ms: [*ms, (_member("liquid_memory/fifo", stat.S_IFIFO | 0o644), b"")], "LM212"),
    "double_slash": (lambda ms: [*ms, (_member("liquid_memory//evil.py"), b"x")], "LM206"),
    "dot_segment": (lambda ms: [*ms, (_member("./liquid_memory/evil.py"), b"x")], "LM206"),
    "case_variant": (lambda ms: [*ms, (_member("Liquid_memory/__init__.py"), b"x")], "LM208"),
    "removed_file": (lambda ms: [(i, d) for i, d in ms if i.filename != "liquid_memory/errors.py"], "LM207"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tampered_release_wheel_is_rejected(rel, tmp_path, case):
    edit, code = CASES[case]
    report = verify_path(_tampered(rel, tmp_path, case, edit), trusted=rel.trusted)
    codes = [p.code for p in report.problems]
    assert not report.ok and code in codes, codes


def test_installed_release_refuses_tampering_redirects_and_missing_revocation(rel, tmp_path):
    key = rel.licence()
    run = ["-c", "from liquid_memory import liquid_scan; import torch; x = torch.randn(1, 1, 8, 8); "
           "liquid_scan(x, x, x, -x.abs(), backend='cpp'); print('RAN')"]  # fmt: skip

    def attempt(**env: str) -> str:
        res = _run([str(rel.bin / "python"), *run], cwd=rel.cwd, env=_clean_env(LM_PRIVATE_KEY=key, **env))
        assert "RAN" in res.stdout or "Traceback" in res.stderr
        return "RAN" if "RAN" in res.stdout else res.stderr.strip().splitlines()[-1]

    extra = rel.pkg / "ops" / "sneaky.py"
    extra.write_text("print('attacker code')\n")
    try:
        assert "LM208" in attempt()  # verified before any native code loads
        res = rel.cli("verify")
        assert res.returncode == 1 and "LM208" in res.stdout
    finally:
        extra.unlink()
    fifo = rel.pkg / "dist_public" / "pipe"
    os.mkfifo(fifo)
    try:
        assert "LM212" in attempt()
    finally:
        fifo.unlink()
    assert "LM215" in attempt(LM_DIST_ROOT=str(REPO))  # a redirected distribution root refuses
    rl = rel.pkg / "dist_public" / "revocations.lmr"
    saved = rl.read_bytes()
    rl.unlink()
    try:
        assert "LM215" in attempt()  # deleting the revocation list refuses instead of skipping the check
    finally:
        rl.write_bytes(saved)
    assert attempt() == "RAN"


def test_revoked_licence_is_refused_by_the_next_release_and_rollback_is_refused(rel, tmp_path):
    """A release carrying a newer revocation list refuses the revoked licence; once it was seen, the older
    release (which predates the revocation) is refused as a rollback."""
    from liquid_memory_vendor import release
    from liquid_memory_vendor.issue import revoke

    key = rel.licence()
    lid = json.loads(rel.cli("license", "--json", LM_PRIVATE_KEY=key).stdout)["licence_id"]
    state = tmp_path / "state"
    old_site = tmp_path / "old"
    shutil.copytree(rel.site / "liquid_memory", old_site / "liquid_memory")
    revoke(rel.vendor, rel.home, lid)
    (rel.pkg / "dist_public" / "revocations.lmr").write_bytes((rel.home / "revocations.lmr").read_bytes())
    new_wheel = tmp_path / rel.wheel.name
    shutil.copy(rel.wheel, new_wheel)
    with zipfile.ZipFile(rel.wheel) as src, zipfile.ZipFile(new_wheel, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "liquid_memory/dist_public/revocations.lmr":
                data = (rel.home / "revocations.lmr").read_bytes()
            dst.writestr(info, data)
    release.finalize_wheel(rel.vendor, new_wheel, sequence=release.next_sequence(rel.home))
    with zipfile.ZipFile(new_wheel) as z:
        (rel.pkg / "MANIFEST.md").write_bytes(z.read("liquid_memory/MANIFEST.md"))
    doc = json.loads(rel.cli("license", "--json", LM_PRIVATE_KEY=key, LM_STATE_DIR=str(state)).stdout)
    assert doc["code"] == "LM110", doc  # LicenseRevoked
    # put the old release back: this machine has seen the newer sequence -> rollback refused
    shutil.rmtree(rel.pkg)
    shutil.copytree(old_site / "liquid_memory", rel.pkg)
    doc = json.loads(rel.cli("license", "--json", LM_PRIVATE_KEY=key, LM_STATE_DIR=str(state)).stdout)
    assert doc["code"] in ("LM213", "LM112"), doc  # ManifestRollback / RevocationListRollback
    res = rel.cli("verify", LM_STATE_DIR=str(state))
    assert res.returncode == 1 and "LM213" in res.stdout
