"""Vendor trust root baked into this build. GENERATED for release builds by ``lm-vendor release``.

This committed version is the DEVELOPMENT build: it trusts only the development vendor identity
whose private key is committed in ``licensing/dev_identity/`` for tests and demos. Never ship a
product built with it.
"""

BUILD = "development"
VENDOR_KEYS: dict[str, str] = {
    # DEVELOPMENT vendor identity (private key committed in licensing/dev_identity/ — not a secret)
    "4a62e31359e195ac": "isgvANVVYmKk6AGIdprSOMOq9NZxX4cT3YCsHrYMpvs",
}
