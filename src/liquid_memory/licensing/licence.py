"""Licence keys: ``lmk1.<claims>.<signature>.<secret>`` (format in README_INTEGRATION.md §Formats).

The first three parts are the vendor-signed certificate; the fourth is the licensee's X25519
secret. The certificate names the matching public key (``lpk``), so a leaked certificate unlocks
nothing, and a secret paired with someone else's certificate is rejected.
"""

from __future__ import annotations

import re
import time
import weakref
from dataclasses import dataclass

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey, SealedBox
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.version import Version

from liquid_memory.errors import (
    ArtifactKeyUnavailable,
    FeatureNotLicensed,
    LicenseExpired,
    LicenseMalformed,
    LicenseNotYetValid,
    LicenseSecretMismatch,
    LicenseSignatureInvalid,
    LicenseTooLarge,
    LicenseUnknownKey,
    VersionNotLicensed,
)
from liquid_memory.licensing.encoding import (
    DOMAIN_LICENCE,
    b64d,
    parse_canonical_json,
    verify_signature,
)

PREFIX = "lmk1."
MAX_KEY_CHARS = 4096
NOT_BEFORE_SKEW_S = 300  # tolerate a vendor clock up to 5 min ahead; expiry itself is exact
CLAIM_FIELDS = {"v", "kid", "lid", "licensee", "iat", "nbf", "exp", "features", "versions", "lpk", "cks"}
_FEATURE = re.compile(r"[a-z][a-z0-9-]{0,31}")
_KID = re.compile(r"[0-9a-f]{16}")
_LID = re.compile(r"lic_[0-9a-f]{16}")


def _malformed(msg: str, reason: str) -> LicenseMalformed:
    return LicenseMalformed(f"licence key {msg}", reason=reason)


# The licensee secrets live outside the Licence objects, so repr, vars, dataclasses.asdict, copy and
# pickle of a Licence never reach them (a pickled-and-restored licence simply cannot unseal anything).
_SECRETS: weakref.WeakKeyDictionary[Licence, bytes] = weakref.WeakKeyDictionary()


@dataclass(frozen=True, eq=False)
class Licence:
    """A verified licence (claims only). Its secret is held privately by this module, never by the object."""

    kid: str
    lid: str
    licensee: str
    issued: int
    not_before: int
    expires: int
    features: tuple[str, ...]
    versions: str
    licensee_public: bytes
    sealed_content_keys: dict[str, bytes]

    def claims(self) -> dict[str, object]:
        """What ``liquid-memory license`` shows: everything except secrets."""
        return {
            "licence_id": self.lid,
            "licensee": self.licensee,
            "vendor_key_id": self.kid,
            "issued": self.issued,
            "not_before": self.not_before,
            "expires": self.expires,
            "features": list(self.features),
            "versions": self.versions or "any",
            "content_key_ids": sorted(self.sealed_content_keys),
        }

    def check_time(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        if now < self.not_before - NOT_BEFORE_SKEW_S:
            raise LicenseNotYetValid(f"licence {self.lid} is valid only from {_iso(self.not_before)}")
        if now >= self.expires:
            raise LicenseExpired(f"licence {self.lid} for {self.licensee!r} expired at {_iso(self.expires)}")

    def check_feature(self, feature: str) -> None:
        if feature not in self.features:
            granted = ", ".join(self.features) or "none"
            raise FeatureNotLicensed(f"licence {self.lid} does not grant {feature!r} (grants: {granted})")

    def check_version(self, version: str) -> None:
        if self.versions and Version(version) not in SpecifierSet(self.versions):
            raise VersionNotLicensed(
                f"licence {self.lid} covers versions {self.versions!r}, this is liquid-memory {version}"
            )

    def content_key(self, ckid: str) -> bytes:
        """Unseal the artifact content key ``ckid`` with the licensee secret."""
        sealed = self.sealed_content_keys.get(ckid)
        if sealed is None:
            raise ArtifactKeyUnavailable(f"licence {self.lid} carries no key for content key id {ckid}")
        secret = _SECRETS.get(self)
        if secret is None:
            raise ArtifactKeyUnavailable(f"licence {self.lid} is a copy without its secret (parse the key again)")
        try:
            key = SealedBox(PrivateKey(secret)).decrypt(sealed)
        except CryptoError:
            raise ArtifactKeyUnavailable(f"licence {self.lid}: content key {ckid} does not unseal") from None
        if len(key) != 32:
            raise ArtifactKeyUnavailable(f"licence {self.lid}: content key {ckid} has a wrong length")
        return key


def _iso(ts: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def clean_key_text(text: str) -> str:
    """Drop a UTF-8 byte-order mark and surrounding whitespace of any length (editors and shells add them)."""
    return text.strip().lstrip("\ufeff").strip()


def _split(text: str) -> list[str]:
    text = clean_key_text(text)
    if len(text) > MAX_KEY_CHARS:
        raise LicenseTooLarge(f"licence key is {len(text)} characters, the limit is {MAX_KEY_CHARS}")
    if not text:
        raise _malformed("is empty", "empty")
    if not text.startswith(PREFIX):
        if re.match(r"lmk\d+\.", text):
            raise _malformed("has an unsupported format version (this build reads lmk1)", "bad-version")
        raise _malformed("does not start with 'lmk1.'", "bad-prefix")
    parts = text[len(PREFIX) :].split(".")
    if len(parts) < 3:
        raise _malformed("is truncated (expected claims.signature.secret)", "truncated")
    if len(parts) > 3:
        raise _malformed("has trailing data after the secret", "trailing-garbage")
    return parts


def _claims_schema(c: dict[str, object]) -> None:
    missing, unknown = CLAIM_FIELDS - c.keys(), c.keys() - CLAIM_FIELDS
    if missing or unknown:
        raise _malformed(f"claims have missing {sorted(missing)} / unknown {sorted(unknown)} fields", "bad-claims")
    if c["v"] != 1 or type(c["v"]) is not int:
        raise _malformed("claims version is not 1", "bad-claims")
    ints = ("iat", "nbf", "exp")
    if any(type(c[k]) is not int or not 0 <= c[k] < 2**40 for k in ints):  # type: ignore[operator]
        raise _malformed("time fields must be integers (Unix seconds)", "bad-claims")
    if not isinstance(c["kid"], str) or not _KID.fullmatch(c["kid"]):
        raise _malformed("vendor key id is malformed", "bad-claims")
    if not isinstance(c["lid"], str) or not _LID.fullmatch(c["lid"]):
        raise _malformed("licence id is malformed", "bad-claims")
    if not isinstance(c["licensee"], str) or not 0 < len(c["licensee"]) <= 200:
        raise _malformed("licensee must be 1-200 characters", "bad-claims")
    feats = c["features"]
    if not isinstance(feats, list) or not all(isinstance(f, str) and _FEATURE.fullmatch(f) for f in feats):
        raise _malformed("features must be a list of lowercase names", "bad-claims")
    if feats != sorted(set(feats)):
        raise _malformed("features must be sorted and unique", "bad-claims")
    if not isinstance(c["versions"], str) or len(c["versions"]) > 100:
        raise _malformed("versions must be a version specifier string", "bad-claims")
    try:
        SpecifierSet(c["versions"])
    except InvalidSpecifier:
        raise _malformed("versions is not a valid specifier (e.g. '>=0.1,<1')", "bad-claims") from None
    if not isinstance(c["cks"], dict) or len(c["cks"]) > 8:
        raise _malformed("content keys must be an object of at most 8 entries", "bad-claims")
    if not isinstance(c["lpk"], str) or not all(isinstance(v, str) for v in c["cks"].values()):
        raise _malformed("keys must be base64url strings", "bad-claims")


def parse_licence(text: object, trusted: dict[str, bytes]) -> Licence:
    """Parse and cryptographically verify a licence key (not its dates, features or revocation).

    Raises only :class:`~liquid_memory.errors.LiquidMemoryError` subclasses.
    """
    if not isinstance(text, str):
        raise _malformed("must be text", "not-text")
    claims_b64, sig_b64, secret_b64 = _split(text)
    payload = b64d(claims_b64, "claims", _malformed)
    signature = b64d(sig_b64, "signature", _malformed, size=64)
    secret = b64d(secret_b64, "secret", _malformed, size=32)
    claims = parse_canonical_json(payload, "claims", _malformed)
    _claims_schema(claims)
    kid = str(claims["kid"])
    if kid not in trusted:
        raise LicenseUnknownKey(f"licence is signed by vendor key {kid}, which this build does not trust")
    if not verify_signature(trusted[kid], DOMAIN_LICENCE, payload, signature):
        raise LicenseSignatureInvalid("licence signature does not verify (edited or forged certificate)")
    lpk = b64d(str(claims["lpk"]), "licensee public key", _malformed, size=32)
    if bytes(PrivateKey(secret).public_key) != lpk:
        raise LicenseSecretMismatch("the secret part of the licence key does not belong to this certificate")
    cks = {k: b64d(v, "sealed content key", _malformed, size=80) for k, v in claims["cks"].items()}  # type: ignore[union-attr]
    lic = Licence(
        kid=kid,
        lid=str(claims["lid"]),
        licensee=str(claims["licensee"]),
        issued=int(claims["iat"]),  # type: ignore[arg-type]
        not_before=int(claims["nbf"]),  # type: ignore[arg-type]
        expires=int(claims["exp"]),  # type: ignore[arg-type]
        features=tuple(claims["features"]),  # type: ignore[arg-type]
        versions=str(claims["versions"]),
        licensee_public=lpk,
        sealed_content_keys=cks,
    )
    _SECRETS[lic] = secret
    return lic
