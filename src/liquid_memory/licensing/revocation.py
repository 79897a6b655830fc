"""Signed revocation lists: ``lmr1.<payload>.<signature>`` with a monotonically increasing ``seq``.

Rollback protection: the highest ``seq`` seen per vendor key is remembered in the state directory
(``LM_STATE_DIR``, default ``~/.cache/liquid-memory``); an older list is refused, so an attacker cannot
swap in a stale list that predates a revocation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from liquid_memory.errors import LicenseRevoked, RevocationListInvalid, RevocationListRollback
from liquid_memory.licensing.encoding import DOMAIN_REVOCATION, b64d, parse_canonical_json, verify_signature
from liquid_memory.licensing.seen import newest_seen, remember, state_dir  # noqa: F401 - state_dir re-exported

PREFIX = "lmr1."
MAX_CHARS = 1 << 20
FIELDS = {"v", "kid", "seq", "issued", "revoked"}
_LID = re.compile(r"lic_[0-9a-f]{16}")
SEEN_FILE = "revocation-seq.json"


def _invalid(msg: str, reason: str) -> RevocationListInvalid:
    return RevocationListInvalid(f"revocation list {msg}", reason=reason)


@dataclass(frozen=True)
class RevocationList:
    kid: str
    seq: int
    issued: int
    revoked: frozenset[str]

    def check(self, lid: str) -> None:
        if lid in self.revoked:
            raise LicenseRevoked(f"licence {lid} is on the vendor's revocation list (seq {self.seq})")


def parse_revocation_list(text: str, trusted: dict[str, bytes]) -> RevocationList:
    """Parse and verify a revocation list (signature and schema; not rollback)."""
    if not isinstance(text, str) or len(text) > MAX_CHARS:
        raise _invalid("is not text or too large", "too-large")
    text = text.strip()
    if not text.startswith(PREFIX):
        raise _invalid("does not start with 'lmr1.'", "bad-prefix")
    parts = text[len(PREFIX) :].split(".")
    if len(parts) != 2:
        raise _invalid("must have exactly two parts (payload.signature)", "bad-structure")
    payload = b64d(parts[0], "payload", _invalid)
    signature = b64d(parts[1], "signature", _invalid, size=64)
    body = parse_canonical_json(payload, "payload", _invalid)
    if set(body) != FIELDS or body["v"] != 1:
        raise _invalid("has wrong fields", "bad-claims")
    kid, seq, issued, revoked = body["kid"], body["seq"], body["issued"], body["revoked"]
    if type(seq) is not int or type(issued) is not int or seq < 0 or not isinstance(kid, str):
        raise _invalid("has wrong field types", "bad-claims")
    if not isinstance(revoked, list) or not all(isinstance(x, str) and _LID.fullmatch(x) for x in revoked):
        raise _invalid("revoked must be a list of licence ids", "bad-claims")
    if kid not in trusted:
        raise _invalid(f"is signed by untrusted vendor key {kid}", "unknown-key")
    if not verify_signature(trusted[kid], DOMAIN_REVOCATION, payload, signature):
        raise _invalid("signature does not verify", "bad-signature")
    return RevocationList(kid=kid, seq=seq, issued=issued, revoked=frozenset(revoked))


def check_rollback(rl: RevocationList, directory: Path | None = None) -> None:
    """Refuse a list older than the newest seen; remember this one if it is newer."""
    newest = newest_seen(SEEN_FILE, rl.kid, directory)
    if rl.seq < newest:
        raise RevocationListRollback(f"revocation list seq {rl.seq} is older than seq {newest} already seen")
    remember(SEEN_FILE, rl.kid, rl.seq, directory)
