"""CI: rebuild one artifact (float32, d=64) from source and check it behaves like the committed one.

Rebuilding all four takes minutes, so CI rebuilds one; both the fresh and the committed (decrypted,
licence-gated) package are compared with the naive float64 reference and with each other.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch
from liquid_memory_vendor.dev import issue_dev_licence

from liquid_memory.artifacts import aoti_liquid_scan, loader
from liquid_memory.ops.naive import naive_liquid_scan
from tests.licensing.test_round_trip import random_inputs
from tests.numerics import rel_err

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_rebuilt_artifact_matches_committed(monkeypatch):
    from liquid_memory_vendor.aoti_build import build

    torch.set_num_threads(min(2, torch.get_num_threads()))
    fresh = build("float32", 64)
    committed = next(
        a for a in json.loads((REPO / "dist_public" / "AOTI_METADATA.json").read_text())["artifacts"]
        if a["name"] == fresh.name
    )  # fmt: skip
    for field in ("dtype", "head_dim", "chunk_size", "isa", "march", "precision_safe"):
        assert fresh.info[field] == committed[field], field
    for dim in ("batch", "heads", "length_multiple"):
        assert fresh.info["dynamic"][dim] == committed["dynamic"][dim], dim
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / fresh.name
        path.write_bytes(fresh.plaintext)
        runner = torch._inductor.aoti_load_package(str(path))
    monkeypatch.setenv("LM_DIST_ROOT", str(REPO))
    monkeypatch.setenv("LM_PRIVATE_KEY", issue_dev_licence(features=("kernel",)))
    loader.reset()
    for seed, (b, h, t) in enumerate([(1, 1, 64), (2, 3, 192), (3, 2, 128)]):
        q, k, v, log_a, s0 = random_inputs(b, h, t, 64, torch.float32, seed)
        o_new, s_new = runner(q, k, v, log_a, s0)
        o_old, s_old = aoti_liquid_scan(q, k, v, log_a, initial_state=s0, output_final_state=True)
        ro, rs = naive_liquid_scan(q.double(), k.double(), v.double(), log_a.double(), initial_state=s0.double(),
                                   output_final_state=True)  # fmt: skip
        assert rel_err(o_new, ro) < 1e-4 and rel_err(s_new, rs) < 1e-4
        assert rel_err(o_old, ro) < 1e-4 and rel_err(s_old, rs) < 1e-4
        assert rel_err(o_new, o_old) < 1e-5 and rel_err(s_new, s_old) < 1e-5
