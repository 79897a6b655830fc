"""LMAE encrypted artifacts: every modification is detected before any plaintext is returned."""

from __future__ import annotations

import os

import pytest

from liquid_memory import errors as E
from liquid_memory.artifacts.crypto import HEADER_SIZE, decrypt, encrypt, read_key_id

KEY = bytes(range(32))
CKID = "ck_0123456789abcdef"
PLAIN = os.urandom(2_500_000)  # three 1 MiB chunks, the last partial
NAME, VERSION = "liquid_scan_float32_d64_avx2.pt2", "0.1.0"


@pytest.fixture(scope="module")
def blob() -> bytes:
    return encrypt(PLAIN, KEY, CKID, name=NAME, version=VERSION)


def test_round_trip(blob):
    assert read_key_id(blob) == CKID
    assert decrypt(blob, KEY, name=NAME, version=VERSION) == PLAIN
    assert PLAIN[:4096] not in blob  # encrypted at rest


def test_empty_plaintext_round_trip():
    assert decrypt(encrypt(b"", KEY, CKID, name=NAME, version=VERSION), KEY, name=NAME, version=VERSION) == b""


def _flip(blob: bytes, index: int) -> bytes:
    b = bytearray(blob)
    b[index] ^= 0x01
    return bytes(b)


CASES = {
    "flip-first-byte": (lambda b: _flip(b, 0), {}, E.ArtifactTampered, "bad-magic"),
    "flip-version-byte": (lambda b: _flip(b, 4), {}, E.ArtifactTampered, "bad-version"),
    "flip-size-field": (lambda b: _flip(b, 16), {}, E.ArtifactTampered, "truncated"),
    "flip-header-key-id": (lambda b: _flip(b, 30), {}, E.ArtifactTampered, "auth-failed"),
    "flip-middle-byte": (lambda b: _flip(b, len(b) // 2), {}, E.ArtifactTampered, "auth-failed"),
    "flip-last-byte": (lambda b: _flip(b, len(b) - 1), {}, E.ArtifactTampered, "auth-failed"),
    "flip-first-ciphertext-byte": (lambda b: _flip(b, HEADER_SIZE), {}, E.ArtifactTampered, "auth-failed"),
    "truncated-by-one": (lambda b: b[:-1], {}, E.ArtifactTampered, "truncated"),
    "truncated-to-header": (lambda b: b[:HEADER_SIZE], {}, E.ArtifactTampered, "truncated"),
    "truncated-inside-header": (lambda b: b[:10], {}, E.ArtifactTampered, "truncated"),
    "empty-file": (lambda b: b"", {}, E.ArtifactTampered, "truncated"),
    "appended-byte": (lambda b: b + b"\0", {}, E.ArtifactTampered, "appended"),
    "appended-chunk": (lambda b: b + b[HEADER_SIZE : HEADER_SIZE + 1024], {}, E.ArtifactTampered, "appended"),
    "renamed": (lambda b: b, {"name": "liquid_scan_bfloat16_d64_avx2.pt2"}, E.ArtifactTampered, "wrong-name"),
    "other-version": (lambda b: b, {"version": "0.2.0"}, E.ArtifactTampered, "wrong-name"),
    "wrong-content-key": (lambda b: b, {"key": bytes(32)}, E.ArtifactKeyUnavailable, "wrong-key"),
    "not-encrypted": (lambda b: PLAIN[:5000], {}, E.ArtifactTampered, "bad-magic"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_artifact(name, blob):
    mutate, over, cls, reason = CASES[name]
    kwargs = {"name": NAME, "version": VERSION, **{k: v for k, v in over.items() if k != "key"}}
    with pytest.raises(cls) as info:
        decrypt(mutate(blob), over.get("key", KEY), **kwargs)
    assert info.value.reason == reason


def test_chunks_cannot_be_reordered(blob):
    chunk = (1 << 20) + 16
    a, b = blob[HEADER_SIZE : HEADER_SIZE + chunk], blob[HEADER_SIZE + chunk : HEADER_SIZE + 2 * chunk]
    swapped = blob[:HEADER_SIZE] + b + a + blob[HEADER_SIZE + 2 * chunk :]
    with pytest.raises(E.ArtifactTampered):
        decrypt(swapped, KEY, name=NAME, version=VERSION)


def test_layout_matches_the_documented_format(blob):
    """README_INTEGRATION.md §3.4: 71-byte header, then one 16-byte tag per 1 MiB chunk."""
    assert HEADER_SIZE == 71 and blob[:5] == b"LMAE\x01"
    assert len(blob) == 71 + len(PLAIN) + 3 * 16
    assert int.from_bytes(blob[8:12], "big") == 1 << 20 and int.from_bytes(blob[12:20], "big") == len(PLAIN)
    assert blob[28:47] == CKID.encode()
