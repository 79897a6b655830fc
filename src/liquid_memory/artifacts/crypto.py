"""Encrypted artifact format ``LMAE`` v1: chunked AES-256-GCM (README_INTEGRATION.md §Formats).

Header (71 bytes): magic ``LMAE`` | version u8 = 1 | 3 zero bytes | chunk size u32 BE | plaintext
size u64 BE | nonce prefix (8 random bytes) | content key id (19 ASCII bytes, ``ck_`` + 16 hex) |
name tag (first 8 bytes of SHA-256(name 0x00 version)) | key check (first 16 bytes of
HMAC-SHA256(key, "lm-artifact-kcv-v1" | nonce prefix)).
Then ``ceil(size / chunk)`` chunks (at least one), each ``AES-GCM(key, nonce = prefix | index u32 BE,
plaintext chunk, AAD)`` with ``AAD = "lm-artifact-v1" 0x00 name 0x00 version 0x00 header index u64 BE
final u8``. The final flag stops truncation at a chunk boundary; the header in the AAD binds sizes.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from liquid_memory.errors import ArtifactKeyUnavailable, ArtifactTampered

MAGIC = b"LMAE"
VERSION = 1
DEFAULT_CHUNK = 1 << 20
TAG = 16
_HEADER = struct.Struct(">4sB3sIQ8s19s8s16s")
HEADER_SIZE = _HEADER.size


def _name_tag(name: str, version: str) -> bytes:
    return hashlib.sha256(name.encode() + b"\x00" + version.encode()).digest()[:8]


def _key_check(key: bytes, prefix: bytes) -> bytes:
    return hmac.new(key, b"lm-artifact-kcv-v1" + prefix, hashlib.sha256).digest()[:16]


def _aad(name: str, version: str, header: bytes, index: int, final: bool) -> bytes:
    ident = b"lm-artifact-v1\x00" + name.encode() + b"\x00" + version.encode() + b"\x00"
    return ident + header + struct.pack(">QB", index, int(final))


def _n_chunks(size: int, chunk: int) -> int:
    return max(1, -(-size // chunk))


def encrypt(plaintext: bytes, key: bytes, ckid: str, *, name: str, version: str, chunk: int = DEFAULT_CHUNK) -> bytes:
    if len(key) != 32 or len(ckid.encode()) != 19:
        raise ValueError("content key must be 32 bytes and its id 19 ASCII characters")
    prefix = os.urandom(8)
    header = _HEADER.pack(
        MAGIC, VERSION, b"\0" * 3, chunk, len(plaintext), prefix, ckid.encode(), _name_tag(name, version),
        _key_check(key, prefix),
    )  # fmt: skip
    aes = AESGCM(key)
    n = _n_chunks(len(plaintext), chunk)
    out = [header]
    for i in range(n):
        part = plaintext[i * chunk : (i + 1) * chunk]
        out.append(aes.encrypt(prefix + struct.pack(">I", i), part, _aad(name, version, header, i, i == n - 1)))
    return b"".join(out)


def read_key_id(blob: bytes) -> str:
    """The content key id the artifact needs (validates the header's shape only)."""
    return _parse_header(blob)[4]


def _tampered(msg: str, reason: str) -> ArtifactTampered:
    return ArtifactTampered(msg, reason=reason)


def _parse_header(blob: bytes) -> tuple[bytes, int, int, bytes, str, bytes, bytes]:
    if len(blob) < HEADER_SIZE:
        raise _tampered(f"artifact is truncated ({len(blob)} bytes, shorter than its header)", "truncated")
    magic, version, zero, chunk, size, prefix, ckid_raw, name_tag, kcv = _HEADER.unpack_from(blob)
    if magic != MAGIC:
        raise _tampered("artifact does not start with the LMAE magic (not an encrypted artifact)", "bad-magic")
    if version != VERSION or zero != b"\0" * 3:
        raise _tampered(f"artifact format version {version} is not supported", "bad-version")
    if not 1024 <= chunk <= 1 << 26 or size > 1 << 34:
        raise _tampered("artifact header has impossible sizes", "bad-header")
    try:
        ckid = ckid_raw.decode("ascii")
    except UnicodeDecodeError:
        raise _tampered("artifact header has a malformed key id", "bad-header") from None
    return blob[:HEADER_SIZE], chunk, size, prefix, ckid, name_tag, kcv


def decrypt(blob: bytes, key: bytes, *, name: str, version: str) -> bytes:
    """Authenticate and decrypt, or raise ``ArtifactTampered`` / ``ArtifactKeyUnavailable``."""
    header, chunk, size, prefix, ckid, name_tag, kcv = _parse_header(blob)
    if not hmac.compare_digest(name_tag, _name_tag(name, version)):
        raise _tampered(f"artifact was encrypted for another name/version than {name} {version} (renamed?)",
                        "wrong-name")  # fmt: skip
    if not hmac.compare_digest(kcv, _key_check(key, prefix)):
        raise ArtifactKeyUnavailable(f"content key {ckid} does not match this artifact", reason="wrong-key")
    n = _n_chunks(size, chunk)
    expected = HEADER_SIZE + size + n * TAG
    if len(blob) < expected:
        raise _tampered(f"artifact {name} is truncated ({len(blob)} of {expected} bytes)", "truncated")
    if len(blob) > expected:
        raise _tampered(f"artifact {name} has {len(blob) - expected} bytes appended", "appended")
    aes = AESGCM(key)
    parts, pos = [], HEADER_SIZE
    for i in range(n):
        clen = min(chunk, size - i * chunk) + TAG
        try:
            parts.append(aes.decrypt(prefix + struct.pack(">I", i), blob[pos : pos + clen],
                                     _aad(name, version, header, i, i == n - 1)))  # fmt: skip
        except InvalidTag:
            raise _tampered(f"artifact {name}: chunk {i} fails authentication (modified)", "auth-failed") from None
        pos += clen
    return b"".join(parts)
