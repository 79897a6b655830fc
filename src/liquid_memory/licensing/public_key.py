"""The vendor's published verification key as one line: ``lmpub1.<key id>.<b64u(Ed25519 public key)>``.

A vendor publishes it (``lm-vendor public-key``); a reviewer hands it to ``liquid-memory verify PATH
--vendor-key`` to check a release wheel in any environment before installing it (as ``minisign -V -P``).
The key id is redundant with the key on purpose: a line whose id does not match its key is refused, so a
typo or a spliced line never verifies anything. This module owns the format, for both its writer and readers.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from liquid_memory.errors import UsageError
from liquid_memory.licensing.encoding import b64d, b64e, key_id

PREFIX = "lmpub1."
MAX_FILE_BYTES = 4096  # the line is 67 characters; a file may add whitespace, not a novel
_LINE = re.compile(r"lmpub1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{43})")


def format_public_key(public_key: bytes) -> str:
    """The one line a vendor publishes for ``public_key`` (32-byte Ed25519)."""
    return f"{PREFIX}{key_id(public_key)}.{b64e(public_key)}"


REMEDY = "pass the line `lm-vendor public-key` prints (lmpub1.<key id>.<key>) or a file holding it"


def _bad(msg: str, reason: str = "bad-vendor-key") -> UsageError:
    return UsageError(f"--vendor-key: {msg}", reason=reason, remedy=REMEDY)


def parse_public_key(text: str) -> tuple[str, bytes]:
    """``(key id, public key)`` from a published line (surrounding whitespace ignored); typed refusal otherwise."""
    line = text.strip().lstrip("\ufeff").strip()
    m = _LINE.fullmatch(line)
    if not m:
        raise _bad("not a vendor key line (expected lmpub1.<16 hex key id>.<43 base64url characters>)")
    public = b64d(m.group(2), "vendor public key", lambda msg, reason: _bad(msg, reason), size=32)
    if key_id(public) != m.group(1):
        raise _bad(f"key id {m.group(1)} does not belong to the key on the same line", reason="kid-mismatch")
    return m.group(1), public


def read_public_key(value: str) -> tuple[str, bytes]:
    """``--vendor-key`` takes the line itself or a regular file holding it (never a FIFO or device: no hang)."""
    if value.strip().startswith(PREFIX):
        return parse_public_key(value)
    path = Path(value)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise _bad(f"{value[:80]!r} is neither a vendor key line (lmpub1.…) nor a readable file ({exc.strerror})",
                   reason="unreadable") from None  # fmt: skip
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _bad(f"{value[:80]!r} is not a regular file", reason="not-regular-file")
    with os.fdopen(fd, "rb") as fh:
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _bad(f"{value[:80]!r} is larger than {MAX_FILE_BYTES} bytes; it should hold one line", reason="too-large")
    return parse_public_key(raw.decode("utf-8", errors="replace"))
