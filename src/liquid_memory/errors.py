"""Typed errors of Liquid Memory, each with a stable machine-readable code and a remedy.

Every failure the SDK reports to a user is one of these classes. ``code`` never changes between
releases (scripts and support match on it); ``str(err)`` is the human message, which always says
what to do. No message ever contains a secret (licence secret, content key, passphrase).
"""

from __future__ import annotations


class LiquidMemoryError(Exception):
    """Base class: ``code`` is stable, ``reason`` refines it, ``remedy`` tells the user what to do next."""

    code: str = "LM000"
    default_remedy: str = ""

    def __init__(self, message: str, *, code: str | None = None, remedy: str | None = None, reason: str = "") -> None:
        self.code = code or type(self).code
        self.reason = reason  # stable short slug refining the code, e.g. "bad-base64"
        self.remedy = self.default_remedy if remedy is None else remedy
        self.detail = message
        text = f"[{self.code}] {message}"
        if self.remedy:
            text += f" — {self.remedy}"
        super().__init__(text)

    def to_dict(self) -> dict[str, str]:
        """JSON-friendly form (for ``--json`` output and HTTP error bodies)."""
        name = type(self).__name__
        out = {"error": name, "code": self.code, "message": self.detail, "remedy": self.remedy}
        if self.reason:
            out["reason"] = self.reason
        return out


_GET_KEY = (
    "Set LM_PRIVATE_KEY to your licence key (or LM_PRIVATE_KEY_FILE to a file holding it); "
    "contact your vendor for a key, or for evaluation set LM_BACKEND=reference"
)


# --- licence -------------------------------------------------------------------------------------
class LicenseError(LiquidMemoryError):
    code = "LM100"


class LicenseMissing(LicenseError):
    code = "LM101"
    default_remedy = _GET_KEY


class LicenseMalformed(LicenseError):
    code = "LM102"
    default_remedy = "Copy the whole licence key again exactly as issued (one line starting with 'lmk1.')"


class LicenseSignatureInvalid(LicenseError):
    code = "LM103"
    default_remedy = "The licence was not signed by a vendor this build trusts, or was edited; ask the vendor"


class LicenseUnknownKey(LicenseError):
    code = "LM104"
    default_remedy = "The licence names a vendor key this build does not trust; use a key for this product"


class LicenseSecretMismatch(LicenseError):
    code = "LM105"
    default_remedy = "The licensee secret does not match the certificate; use the complete key as issued"


class LicenseExpired(LicenseError):
    code = "LM106"
    default_remedy = "Renew the licence with your vendor"


class LicenseNotYetValid(LicenseError):
    code = "LM107"
    default_remedy = "Check the machine clock, or wait until the licence's not-before date"


class FeatureNotLicensed(LicenseError):
    code = "LM108"
    default_remedy = "Ask your vendor for a licence that includes this feature"


class VersionNotLicensed(LicenseError):
    code = "LM109"
    default_remedy = "Install a product version your licence covers, or ask your vendor for an upgrade"


class LicenseRevoked(LicenseError):
    code = "LM110"
    default_remedy = "This licence was revoked; contact your vendor"


class RevocationListInvalid(LicenseError):
    code = "LM111"
    default_remedy = "Reinstall the distribution or fetch the current revocation list from your vendor"


class RevocationListRollback(LicenseError):
    code = "LM112"
    default_remedy = "A revocation list older than one already seen was offered; reinstall the current one"


class LicenseTooLarge(LicenseError):
    code = "LM113"
    default_remedy = "A licence key is under 4 KB; check LM_PRIVATE_KEY holds the key and nothing else"


# --- manifest / distribution ---------------------------------------------------------------------
class ManifestError(LiquidMemoryError):
    code = "LM200"
    default_remedy = "Do not install this distribution; download it again from the vendor"


class ManifestInvalid(ManifestError):
    code = "LM201"


class ManifestMissing(ManifestError):
    code = "LM202"


class ManifestUnsigned(ManifestError):
    code = "LM203"


class ManifestSignatureInvalid(ManifestError):
    code = "LM204"


class ManifestExpired(ManifestError):
    code = "LM205"


class ManifestUnsafePath(ManifestError):
    code = "LM206"


class ManifestFileMissing(ManifestError):
    code = "LM207"


class ManifestExtraFile(ManifestError):
    code = "LM208"


class ManifestSizeMismatch(ManifestError):
    code = "LM209"


class ManifestHashMismatch(ManifestError):
    code = "LM210"


class ManifestSymlink(ManifestError):
    code = "LM211"


class ManifestNotRegularFile(ManifestError):
    code = "LM212"  # FIFO, socket, device file or another non-regular entry in a distribution


class ManifestRollback(ManifestError):
    code = "LM213"
    default_remedy = "This distribution is older than one already seen on this machine; install the current release"


class ManifestVersionMismatch(ManifestError):
    code = "LM214"
    default_remedy = "The manifest belongs to another product version; reinstall one consistent distribution"


class DistributionUnavailable(ManifestError):
    code = "LM215"  # the signed distribution (manifest + revocation list) is missing or redirected
    default_remedy = "Reinstall liquid-memory; in a release install LM_DIST_ROOT cannot point elsewhere (unset it)"


# --- artifacts -----------------------------------------------------------------------------------
class ArtifactError(LiquidMemoryError):
    code = "LM300"
    default_remedy = "Reinstall the distribution; if it persists, contact your vendor"


class ArtifactTampered(ArtifactError):
    code = "LM301"


class ArtifactIncompatible(ArtifactError):
    code = "LM302"
    default_remedy = "Use a backend that fits (LM_BACKEND=cpp or reference) or a distribution built for this machine"


class ArtifactNotFound(ArtifactError):
    code = "LM303"


class ArtifactKeyUnavailable(ArtifactError):
    code = "LM304"
    default_remedy = "Your licence does not unlock this distribution's artifacts; ask your vendor for a key"


class ArtifactLoadFailed(ArtifactError):
    code = "LM305"


# --- vendor side ---------------------------------------------------------------------------------
class VendorError(LiquidMemoryError):
    code = "LM400"


class VendorKeyInvalid(VendorError):
    code = "LM401"
    default_remedy = "Check the vendor key file path and passphrase"


class ReleaseContentRefused(VendorError):
    code = "LM402"  # lm-vendor release: the built wheel holds a file a release wheel may not hold
    default_remedy = (
        "Release from a committed checkout; the wheel is built from a fresh export of the tracked files, so "
        "this means the tracked sources or the build itself put it there — fix that, then release again"
    )


class UsageError(LiquidMemoryError):
    code = "LM900"
    default_remedy = "See --help"


class ExtraMissing(UsageError):
    code = "LM901"  # a command needs an optional extra that is not installed (the message names it)


ALL_ERRORS: tuple[type[LiquidMemoryError], ...] = tuple(
    cls for cls in list(globals().values()) if isinstance(cls, type) and issubclass(cls, LiquidMemoryError)
)


def codes() -> dict[str, str]:
    """Map every stable code to its class name (documentation and tests check uniqueness)."""
    return {cls.code: cls.__name__ for cls in ALL_ERRORS}
