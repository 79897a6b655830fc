"""The real ``lm-vendor release`` wheel every release test shares (``rel``, release_env.py), attacked as a
customer would: installed in a fresh venv whose ``liquid_memory`` comes only from the wheel.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import time
import zipfile

import pytest
import torch

from liquid_memory.manifest.verify import verify_path
from tests.licensing.release_env import REPO, clean_env, member, rewrite_wheel, run
from tests.numerics import rel_err

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
    res = run([str(rel.bin / "python"), "-c", probe], cwd=rel.cwd, env=clean_env(LM_PRIVATE_KEY=rel.licence()))
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
    res = run([str(rel.bin / "python"), "-c", FLOW, str(tmp_path / "xs.pt"), json.dumps(refused),
                str(tmp_path / "out.pt"), str(tmp_path / "scan.pt2")], cwd=rel.cwd,
               env=clean_env(LM_PRIVATE_KEY=rel.licence()))  # fmt: skip
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


def _tampered(rel, tmp, name: str, edit):  # noqa: ANN001
    return rewrite_wheel(rel.wheel, tmp / f"{name}.whl", edit)


def _replace(target: str, change):  # noqa: ANN001
    return lambda ms: [(i, change(d) if i.filename == target else d) for i, d in ms]


CASES = {
    "changed_py": (
        _replace("liquid_memory/ops/dispatch.py", lambda d: d.replace(b"require_feature", b"require_featurX")),
        "LM210",
    ),  # same size, other bytes: the hash catches it
    "added_pth": (lambda ms: [*ms, (member("zz_evil.pth"), b"import os\n")], "LM208"),
    "trust_root_plus_dev_key": (
        _replace(
            "liquid_memory/licensing/_trust_root.py",
            lambda d: d.replace(b"}\n", b", '4a62e31359e195ac': 'isgvANVVYmKk6AGIdprSOMOq9NZxX4cT3YCsHrYMpvs'}\n"),
        ),
        "LM209",
    ),  # fmt: skip
    "fifo_member": (lambda ms: [*ms, (member("liquid_memory/fifo", stat.S_IFIFO | 0o644), b"")], "LM212"),
    "double_slash": (lambda ms: [*ms, (member("liquid_memory//evil.py"), b"x")], "LM206"),
    "dot_segment": (lambda ms: [*ms, (member("./liquid_memory/evil.py"), b"x")], "LM206"),
    "case_variant": (lambda ms: [*ms, (member("Liquid_memory/__init__.py"), b"x")], "LM208"),
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
    probe = ["-c", "from liquid_memory import liquid_scan; import torch; x = torch.randn(1, 1, 8, 8); "
           "liquid_scan(x, x, x, -x.abs(), backend='cpp'); print('RAN')"]  # fmt: skip

    def attempt(**env: str) -> str:
        res = run([str(rel.bin / "python"), *probe], cwd=rel.cwd, env=clean_env(LM_PRIVATE_KEY=key, **env))
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
    from liquid_memory_vendor.export import export_tree
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
    source = tmp_path / "export"  # the vendor's next release: the same tracked tree, the newer list
    export_tree(rel.checkout, source)
    (source / "dist_public" / "revocations.lmr").write_bytes((rel.home / "revocations.lmr").read_bytes())
    release.finalize_wheel(rel.vendor, new_wheel, sequence=release.next_sequence(rel.home), source=source)
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
