"""Which vendor public keys this build trusts.

Release builds trust exactly the keys baked into ``_trust_root.py`` when the wheel was built
(``lm-vendor release`` writes that file); nothing at run time can add one. Development builds (the
repository and wheels built without a vendor trust root) trust the committed DEVELOPMENT vendor
identity and, for tests only, keys listed in ``LM_DEV_TRUSTED_KEYS`` ("kid:base64url,...").
"""

from __future__ import annotations

import os

from liquid_memory.errors import LicenseMalformed
from liquid_memory.licensing import _trust_root
from liquid_memory.licensing.encoding import b64d, key_id

DEV_TRUST_ENV = "LM_DEV_TRUSTED_KEYS"
# The committed DEVELOPMENT vendor identity (private key public in licensing/dev_identity/).
DEVELOPMENT_KEY_ID = "4a62e31359e195ac"


def is_development_key(kid: str) -> bool:
    return kid == DEVELOPMENT_KEY_ID


def build_kind() -> str:
    """``"release"`` or ``"development"`` (decided when the package was built)."""
    return "release" if _trust_root.BUILD == "release" else "development"


def is_release_build() -> bool:
    return build_kind() == "release"


def _decode_entry(kid: str, b64: str) -> bytes:
    def err(msg: str, reason: str) -> LicenseMalformed:
        return LicenseMalformed(f"trusted key {kid}: {msg}", reason="bad-trust-root")

    public = b64d(b64, "trusted vendor key", err, size=32)
    if key_id(public) != kid:
        raise LicenseMalformed(f"trusted key id {kid} does not match its key", reason="bad-trust-root")
    return public


def trusted_keys() -> dict[str, bytes]:
    """Map key id -> Ed25519 public key for every vendor key this build accepts."""
    keys = {kid: _decode_entry(kid, b64) for kid, b64 in _trust_root.VENDOR_KEYS.items()}
    if is_release_build() and any(is_development_key(kid) for kid in keys):
        raise LicenseMalformed("this release build's trust root contains the public DEVELOPMENT identity; "
                               "it is not a genuine release", reason="dev-key-in-release")  # fmt: skip
    if not is_release_build():
        for entry in filter(None, (e.strip() for e in os.environ.get(DEV_TRUST_ENV, "").split(","))):
            kid, _, b64 = entry.partition(":")
            keys[kid] = _decode_entry(kid, b64)
    return keys
