"""Issue licence keys and revocation lists (the formats are owned by ``liquid_memory.licensing``)."""

from __future__ import annotations

import json
import re
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path

from liquid_memory_vendor.keystore import VendorKey
from nacl.public import PrivateKey, SealedBox
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from liquid_memory.errors import UsageError
from liquid_memory.licensing.encoding import (
    DOMAIN_LICENCE,
    DOMAIN_REVOCATION,
    b64e,
    canonical_json,
    signed_message,
)
from liquid_memory.licensing.licence import PREFIX as LICENCE_PREFIX
from liquid_memory.licensing.revocation import PREFIX as REVOCATION_PREFIX

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")


def parse_date(text: str, *, end_of_day: bool) -> int:
    """Unix seconds of ``--not-before`` / ``--expires``.

    ``YYYY-MM-DD`` is a whole day in UTC: its start (00:00:00) for ``--not-before``, its end (23:59:59, the
    ``end_of_day`` form) for ``--expires``. An ISO-8601 timestamp ``YYYY-MM-DDTHH:MM[:SS][Z|+HH:MM]`` is that
    exact second (without a zone: UTC). Anything else is refused, not guessed.
    """
    text = text.strip()
    try:
        if _DAY.fullmatch(text):
            start = int(datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC).timestamp())
            return start + (86399 if end_of_day else 0)
        if _TIMESTAMP.fullmatch(text):
            dt = datetime.fromisoformat(text)
            return int((dt if dt.tzinfo else dt.replace(tzinfo=UTC)).timestamp())
    except ValueError:
        pass
    raise UsageError(f"bad date {text[:40]!r}: use YYYY-MM-DD (a whole day, UTC) or an ISO-8601 timestamp "
                     "YYYY-MM-DDTHH:MM:SSZ")  # fmt: skip


def issue_licence(
    vk: VendorKey,
    *,
    licensee: str,
    expires: int,
    features: list[str],
    versions: str = "",
    not_before: int | None = None,
    issued: int | None = None,
) -> str:
    """A new licence key ``lmk1.<claims>.<sig>.<secret>`` carrying, sealed to it, only the content keys its
    features and version range allow (one per feature and release line)."""
    try:
        SpecifierSet(versions)
    except InvalidSpecifier:
        raise UsageError(f"bad --versions {versions!r}: use a specifier like '>=0.1,<1'") from None
    now = int(time.time()) if issued is None else issued
    licensee_key = PrivateKey.generate()
    sealer = SealedBox(licensee_key.public_key)
    claims = {
        "v": 1,
        "kid": vk.kid,
        "lid": "lic_" + secrets.token_hex(8),
        "licensee": licensee,
        "iat": now,
        "nbf": now if not_before is None else not_before,
        "exp": expires,
        "features": sorted(set(features)),
        "versions": versions,
        "lpk": b64e(bytes(licensee_key.public_key)),
        "cks": {ckid: b64e(sealer.encrypt(key)) for ckid, key in vk.keys_for_licence(features, versions).items()},
    }
    payload = canonical_json(claims)
    sig = vk.sign(signed_message(DOMAIN_LICENCE, payload))
    return f"{LICENCE_PREFIX}{b64e(payload)}.{b64e(sig)}.{b64e(bytes(licensee_key))}"


def sign_revocation_list(vk: VendorKey, revoked: list[str], seq: int, issued: int | None = None) -> str:
    body = {
        "v": 1,
        "kid": vk.kid,
        "seq": seq,
        "issued": int(time.time()) if issued is None else issued,
        "revoked": sorted(set(revoked)),
    }
    payload = canonical_json(body)
    sig = vk.sign(signed_message(DOMAIN_REVOCATION, payload))
    return f"{REVOCATION_PREFIX}{b64e(payload)}.{b64e(sig)}"


def revoke(vk: VendorKey, home: Path, licence_id: str) -> tuple[Path, int]:
    """Add ``licence_id`` to the vendor's list in ``home`` and write the newly signed list (seq + 1)."""
    state_path = home / "revocations.json"
    state = json.loads(state_path.read_text()) if state_path.exists() else {"seq": 0, "revoked": []}
    revoked = sorted(set(state["revoked"]) | {licence_id})
    seq = int(state["seq"]) + 1
    (home / "revocations.lmr").write_text(sign_revocation_list(vk, revoked, seq) + "\n")
    state_path.write_text(json.dumps({"seq": seq, "revoked": revoked}, indent=2) + "\n")
    return home / "revocations.lmr", seq
