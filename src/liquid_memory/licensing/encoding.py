"""Strict, canonical encodings shared by every signed format (licence, revocation list, manifest).

Why strict: a signature covers bytes, so the parser accepts exactly one spelling of each value
(unpadded base64url with zero tail bits, canonical JSON without duplicate keys). Anything else is a
typed error, never an exception from a library.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Callable

from nacl.exceptions import BadSignatureError, CryptoError
from nacl.signing import VerifyKey

from liquid_memory.errors import LiquidMemoryError

_B64URL = re.compile(r"[A-Za-z0-9_-]*")

DOMAIN_LICENCE = b"lm-licence-v1"
DOMAIN_REVOCATION = b"lm-revocation-v1"
DOMAIN_MANIFEST = b"lm-manifest-v1"
DOMAIN_KEY_ID = b"lm-keyid-v1"

ErrorFactory = Callable[[str, str], LiquidMemoryError]


def b64e(data: bytes) -> str:
    """Unpadded base64url."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64d(text: str, what: str, err: ErrorFactory, *, size: int | None = None) -> bytes:
    """Decode canonical unpadded base64url; ``err(message, reason)`` builds the typed error."""
    if not isinstance(text, str) or not _B64URL.fullmatch(text):
        raise err(f"{what}: not base64url (only A-Z a-z 0-9 - _ without padding are allowed)", "bad-base64")
    if size is not None and len(text) != (size * 4 + 2) // 3:
        raise err(f"{what}: expected {size} bytes ({(size * 4 + 2) // 3} base64url characters)", "bad-length")
    if len(text) % 4 == 1:
        raise err(f"{what}: base64url has an impossible length", "bad-base64")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:  # pragma: no cover - the regex already excludes these
        raise err(f"{what}: undecodable base64url", "bad-base64") from exc
    if b64e(raw) != text:
        raise err(f"{what}: non-canonical base64url (non-zero trailing bits)", "non-canonical-base64")
    if size is not None and len(raw) != size:
        raise err(f"{what}: expected {size} bytes, got {len(raw)}", "bad-length")
    return raw


def canonical_json(obj: object) -> bytes:
    """The one byte spelling we sign: sorted keys, no spaces, ASCII only."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise _DuplicateKey(key)
        out[key] = value
    return out


class _DuplicateKey(Exception):
    pass


def _reject_constant(name: str) -> object:
    raise ValueError(f"non-standard JSON constant {name}")


def parse_canonical_json(raw: bytes, what: str, err: ErrorFactory) -> dict[str, object]:
    """Parse a JSON object that must be in canonical form and free of duplicate keys."""
    try:
        text = raw.decode("ascii")
        obj = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except _DuplicateKey as exc:
        raise err(f"{what}: duplicate JSON key {str(exc)[:40]!r}", "duplicate-key") from None
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise err(f"{what}: not valid JSON", "bad-json") from None
    if not isinstance(obj, dict):
        raise err(f"{what}: JSON must be an object", "bad-json")
    if canonical_json(obj) != raw:
        raise err(f"{what}: JSON is not in canonical form (sorted keys, no spaces)", "non-canonical-json")
    return obj


def key_id(public_key: bytes) -> str:
    """16 hex digits naming an Ed25519 public key (domain-separated hash, like minisign's key id)."""
    return hashlib.sha256(DOMAIN_KEY_ID + b"\x00" + public_key).hexdigest()[:16]


def signed_message(domain: bytes, payload: bytes) -> bytes:
    """Domain separation: a signature made for one format can never verify as another."""
    return domain + b"\x00" + payload


def verify_raw(public_key: bytes, message: bytes, signature: bytes) -> bool:
    """Ed25519 verify of an already domain-separated message; False instead of exceptions."""
    try:
        VerifyKey(public_key).verify(message, signature)
    except (BadSignatureError, CryptoError, ValueError, TypeError):
        return False
    return True


def verify_signature(public_key: bytes, domain: bytes, payload: bytes, signature: bytes) -> bool:
    return verify_raw(public_key, signed_message(domain, payload), signature)
