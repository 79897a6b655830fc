"""The committed distribution end to end: licence -> verified, decrypted AOTI artifacts == naive reference."""

from __future__ import annotations

import glob
import os
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from liquid_memory_vendor.dev import dev_vendor, issue_dev_licence

from liquid_memory import errors as E
from liquid_memory.artifacts import aoti_liquid_scan, available, loader
from liquid_memory.ops.naive import naive_liquid_scan
from tests.licensing.helpers import make_licence
from tests.numerics import rel_err

REPO = Path(__file__).resolve().parents[2]
TOL = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def random_inputs(b, h, t, d, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, t, d, generator=g).to(dtype) for _ in range(3))
    log_a = -torch.rand(b, h, t, d, generator=g) * 0.5
    s0 = torch.randn(b, h, d, d, generator=g) * 0.1
    return q, k, v, log_a, s0


def check_against_naive(dtype, d, *, b=2, h=3, t=100, reverse=False, seed=0) -> tuple[float, float]:
    q, k, v, log_a, s0 = random_inputs(b, h, t, d, dtype, seed)
    o, final = aoti_liquid_scan(q, k, v, log_a, initial_state=s0, reverse=reverse, output_final_state=True)
    ro, rf = naive_liquid_scan(q.double(), k.double(), v.double(), log_a.double(), initial_state=s0.double(),
                               reverse=reverse, output_final_state=True)  # fmt: skip
    assert o.dtype == dtype and o.shape == q.shape and final.dtype == torch.float32
    return rel_err(o, ro), rel_err(final, rf)


@pytest.fixture(autouse=True)
def fresh_loader(monkeypatch):
    monkeypatch.setenv("LM_DIST_ROOT", str(REPO))
    loader.reset()
    yield
    loader.reset()


@pytest.fixture
def dev_licence(monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("kernel",)))


def test_without_licence_nothing_loads():
    with pytest.raises(E.LicenseMissing):
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("d", [64, 128])
def test_artifact_equals_naive(dev_licence, dtype, d, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # private: other processes' lm-aoti-* don't count
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), "lm-aoti-*")))
    for t, reverse, b, h in [(100, False, 2, 3), (64, True, 1, 1), (1, False, 1, 2), (130, True, 3, 1)]:
        err_o, err_s = check_against_naive(dtype, d, b=b, h=h, t=t, reverse=reverse, seed=t)
        assert err_o < TOL[dtype] and err_s < TOL[dtype], (t, reverse, err_o, err_s)
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), "lm-aoti-*"))) == before  # plaintext removed


def test_available_and_input_checks(dev_licence):
    assert available() and available(torch.float32, 64) and not available(torch.float32, 32)
    q, k, v, log_a, _ = random_inputs(1, 1, 64, 64, torch.float32)
    with pytest.raises(E.ArtifactIncompatible) as info:
        aoti_liquid_scan(q.half(), k.half(), v.half(), log_a)
    assert info.value.reason == "dtype"
    with pytest.raises(E.ArtifactIncompatible) as info:
        aoti_liquid_scan(*random_inputs(1, 1, 64, 32, torch.float32)[:4])
    assert info.value.reason == "no-variant"
    with pytest.raises(E.ArtifactIncompatible) as info:
        aoti_liquid_scan(q.requires_grad_(), k, v, log_a)
    assert info.value.reason == "autograd"
    with pytest.raises(E.ArtifactIncompatible) as info:  # beyond the exported dynamic range: refused, not OOB
        aoti_liquid_scan(*random_inputs(1, 1025, 1, 64, torch.float32)[:4])
    assert info.value.reason == "inputs" and "exceed" in str(info.value)


def test_refuses_other_cpu_isa_and_torch(dev_licence, monkeypatch):
    monkeypatch.setattr(loader, "supported_isas", lambda: [])
    with pytest.raises(E.ArtifactIncompatible) as info:
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])
    assert info.value.reason == "cpu-isa"
    monkeypatch.setattr(loader, "torch_release", lambda: "9.9.9")
    with pytest.raises(E.ArtifactIncompatible) as info:
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])
    assert info.value.reason == "torch-version"


def test_feature_and_content_key_are_required(trusted_vendor, monkeypatch):
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("proxy",)))
    with pytest.raises(E.FeatureNotLicensed):
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])
    from liquid_memory.licensing import reset_cache

    reset_cache()
    monkeypatch.setenv("LM_PRIVATE_KEY", make_licence(trusted_vendor))  # valid, but no key for this release
    with pytest.raises(E.ArtifactKeyUnavailable):
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])


def test_tampered_distribution_never_loads(dev_licence, tmp_path, monkeypatch):
    root = tmp_path / "dist"
    shutil.copytree(REPO / "dist_public", root / "dist_public")
    shutil.copy2(REPO / "MANIFEST.md", root / "MANIFEST.md")
    target = next((root / "dist_public").glob("liquid_scan_float32_d64_*.pt2.enc"))
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 1
    target.write_bytes(bytes(data))
    monkeypatch.setenv("LM_DIST_ROOT", str(root))
    with pytest.raises(E.ManifestHashMismatch):
        aoti_liquid_scan(*random_inputs(1, 1, 64, 64, torch.float32)[:4])


def test_init_issue_release_load_round_trip(tmp_path, monkeypatch):
    """``lm-vendor init`` -> ``release`` -> ``issue``; the customer's LiquidMemory on ``aoti`` equals the reference.

    The fresh vendor re-releases the committed fp32/d64 package (decrypted with the dev identity, as a
    stand-in for a fresh AOTI build, which CI covers in test_rebuild.py) under its own content key.
    """
    import json

    from liquid_memory_vendor import keystore
    from liquid_memory_vendor.cli import main as vendor

    from liquid_memory import LiquidMemory
    from liquid_memory.artifacts.crypto import decrypt, read_key_id
    from liquid_memory.licensing import reset_cache
    from liquid_memory.licensing.trust import DEV_TRUST_ENV

    home, prebuilt, root = tmp_path / "home", tmp_path / "prebuilt", tmp_path / "release"
    for p in (home, prebuilt, root):
        p.mkdir()
    (home / "pass").write_text("round trip passphrase")
    common = ["--home", str(home), "--passphrase-file", str(home / "pass")]
    assert vendor(["init", *common, "--label", "Round Trip Vendor"]) == 0

    meta = json.loads((REPO / "dist_public" / "AOTI_METADATA.json").read_text())
    entry = next(e for e in meta["artifacts"] if e["dtype"] == "float32" and e["head_dim"] == 64)
    blob = (REPO / entry["file"]).read_bytes()
    plain = decrypt(blob, dev_vendor().content_keys[read_key_id(blob)], name=entry["name"], version=meta["version"])
    (prebuilt / entry["name"]).write_bytes(plain)
    (prebuilt / f"{entry['name']}.json").write_text(json.dumps({k: v for k, v in entry.items() if k != "file"}))
    assert vendor(["release", *common, "--no-wheel", "--repo", str(root), "--prebuilt", str(prebuilt)]) == 0
    key_file = tmp_path / "customer.key"
    assert vendor(["issue", *common, "--licensee", "Round Trip Customer", "--expires", "2099-12-31",
                   "--features", "kernel", "--out", str(key_file)]) == 0  # fmt: skip

    vk = keystore.load(home / "vendor.key", b"round trip passphrase")
    monkeypatch.setenv(DEV_TRUST_ENV, vk.trust_entry())  # the test build trusts the fresh vendor
    monkeypatch.setenv("LM_DIST_ROOT", str(root))
    monkeypatch.setenv("LM_PRIVATE_KEY_FILE", str(key_file))
    torch.manual_seed(0)
    x = torch.randn(2, 100, 128)
    m = LiquidMemory(128, 2, batch_first=True).eval()
    with torch.no_grad():
        m.backend = "aoti"
        y, _ = m(x, x, x, need_weights=False, is_causal=True)
        m.backend = "reference"
        ref, _ = m(x, x, x, need_weights=False, is_causal=True)
    assert rel_err(y, ref) < 1e-4
    err_o, err_s = check_against_naive(torch.float32, 64)
    assert err_o < 1e-4 and err_s < 1e-4

    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("kernel",)))  # valid, wrong content key
    reset_cache()
    loader.reset()
    with pytest.raises(E.ArtifactKeyUnavailable):
        check_against_naive(torch.float32, 64)
