"""The proxy's smollm2 extractor as the SDK's reference consumer: a setting names a linearized DIR."""

from __future__ import annotations

import asyncio

from liquid_memory_proxy.app import build_extractor_from_settings
from liquid_memory_proxy.settings import ProxySettings


def test_setting_names_the_linearized_dir_and_a_bad_dir_is_reported(tmp_path, monkeypatch):
    monkeypatch.setenv("SMOLLM2_LINEARIZED_DIR", str(tmp_path))
    extractor = build_extractor_from_settings(ProxySettings(extractor="smollm2"))
    assert extractor.linearized_dir == str(tmp_path)
    health = asyncio.run(extractor.health())  # an empty DIR: health says why instead of raising
    assert health["ok"] is False and "CheckpointInvalid" in health["detail"] and "linearized" in health["model"]


def test_without_the_setting_the_original_model_is_used():
    extractor = build_extractor_from_settings(ProxySettings(extractor="smollm2"))
    assert extractor.linearized_dir is None
