"""The vendor's secret material, encrypted at rest: Ed25519 signing key + artifact content keys.

File format ``lm-vendor-key-v1`` (JSON): public fields (kid, public key, KDF parameters) and
``sealed`` = XSalsa20-Poly1305 SecretBox of the canonical-JSON secrets under a key derived from the
passphrase with argon2id (libsodium MODERATE limits unless the file records others).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import nacl.pwhash
import nacl.secret
import nacl.utils
from nacl.exceptions import CryptoError
from nacl.signing import SigningKey
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from liquid_memory.errors import UsageError, VendorKeyInvalid
from liquid_memory.licensing.encoding import b64d, b64e, canonical_json, key_id

FORMAT = "lm-vendor-key-v1"
PASSPHRASE_ENV = "LM_VENDOR_PASSPHRASE"
PASSPHRASE_FILE_ENV = "LM_VENDOR_PASSPHRASE_FILE"
HOME_ENV = "LM_VENDOR_HOME"


def default_home() -> Path:
    return Path(os.environ.get(HOME_ENV) or Path.home() / ".liquid-memory-vendor")


def content_key_id(key: bytes) -> str:
    return "ck_" + hashlib.sha256(b"lm-ckid-v1\x00" + key).hexdigest()[:16]


def release_line(version: str) -> str:
    """``major.minor``: the unit content keys are scoped to (0.1.0 and 0.1.7 share the line 0.1)."""
    v = Version(version)
    return f"{v.major}.{v.minor}"


def scope_name(feature: str, line: str) -> str:
    return f"{feature}@{line}"


@dataclass
class VendorKey:
    """Unlocked vendor identity (keep in memory only).

    Content keys are scoped: one current key per (feature, release line), e.g. ``kernel@0.1``; older keys of
    a scope stay so licences issued later can still open the releases encrypted with them.
    """

    label: str
    signing_key: SigningKey = field(repr=False)
    content_keys: dict[str, bytes] = field(repr=False)
    current_content_key: str  # legacy single key (first kernel key); kept for the file format
    content_scopes: dict[str, str] = field(default_factory=dict)  # ckid -> "feature@line"
    current: dict[str, str] = field(default_factory=dict)  # "feature@line" -> ckid used for new releases

    def content_key_for(self, feature: str, version: str) -> tuple[str, bytes]:
        """The current (ckid, key) for ``feature`` in ``version``'s release line, or a UsageError."""
        scope = scope_name(feature, release_line(version))
        ckid = self.current.get(scope)
        if ckid is None:
            raise UsageError(f"no content key for {scope}: run `lm-vendor rotate-content-key --feature {feature} "
                             f"--line {release_line(version)}`")  # fmt: skip
        return ckid, self.content_keys[ckid]

    def rotate(self, feature: str, line: str) -> str:
        """Make a new current content key for (feature, line); older ones of that scope are kept."""
        ck = nacl.utils.random(32)
        ckid = content_key_id(ck)
        self.content_keys[ckid] = ck
        self.content_scopes[ckid] = scope_name(feature, line)
        self.current[scope_name(feature, line)] = ckid
        return ckid

    def keys_for_licence(self, features: list[str], versions: str) -> dict[str, bytes]:
        """Only the content keys whose feature the licence grants and whose release line its range allows."""
        spec = SpecifierSet(versions)
        out = {}
        for ckid, scope in self.content_scopes.items():
            feature, _, line = scope.partition("@")
            if feature in features and (not versions or any(spec.contains(f"{line}.{n}", prereleases=True)
                                                            for n in range(100))):  # fmt: skip
                out[ckid] = self.content_keys[ckid]
        return out

    @property
    def public_key(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def kid(self) -> str:
        return key_id(self.public_key)

    def sign(self, message: bytes) -> bytes:
        return self.signing_key.sign(message).signature

    def trust_entry(self) -> str:
        """``kid:base64url`` as used by ``_trust_root.py`` and ``LM_DEV_TRUSTED_KEYS``."""
        return f"{self.kid}:{b64e(self.public_key)}"


def generate(label: str, version: str | None = None) -> VendorKey:
    """A new identity with one ``kernel`` content key for the current release line."""
    from liquid_memory.version import __version__

    vk = VendorKey(label=label, signing_key=SigningKey.generate(), content_keys={}, current_content_key="")
    vk.current_content_key = vk.rotate("kernel", release_line(version or __version__))
    return vk


def _err(msg: str, reason: str) -> VendorKeyInvalid:
    return VendorKeyInvalid(f"vendor key file {msg}", reason=reason)


def save(vk: VendorKey, path: Path, passphrase: bytes, *, moderate: bool = True) -> None:
    ops = nacl.pwhash.argon2id.OPSLIMIT_MODERATE if moderate else nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE
    mem = nacl.pwhash.argon2id.MEMLIMIT_MODERATE if moderate else nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE
    salt = nacl.utils.random(nacl.pwhash.argon2id.SALTBYTES)
    box_key = nacl.pwhash.argon2id.kdf(nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=ops, memlimit=mem)
    secrets = canonical_json(
        {
            "signing_seed": b64e(bytes(vk.signing_key)),
            "content_keys": {k: b64e(v) for k, v in vk.content_keys.items()},
            "current_content_key": vk.current_content_key,
            "content_scopes": vk.content_scopes,
            "current": vk.current,
        }
    )
    doc = {
        "format": FORMAT,
        "label": vk.label,
        "kid": vk.kid,
        "public_key": b64e(vk.public_key),
        "kdf": {"alg": "argon2id13", "opslimit": ops, "memlimit": mem, "salt": b64e(salt)},
        "sealed": b64e(bytes(nacl.secret.SecretBox(box_key).encrypt(secrets))),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2, sort_keys=True)
        fh.write("\n")


def load(path: Path, passphrase: bytes) -> VendorKey:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError:
        raise _err(f"{path} cannot be read (run `lm-vendor init` first?)", "missing") from None
    except ValueError:
        raise _err(f"{path} is not JSON", "bad-json") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise _err(f"{path} is not a {FORMAT} file", "bad-format")
    try:
        return _unseal(doc, passphrase)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise _err(f"{path} has missing or malformed fields", "bad-format") from None


def _unseal(doc: dict, passphrase: bytes) -> VendorKey:
    kdf = doc["kdf"]
    salt = b64d(kdf["salt"], "salt", _err, size=nacl.pwhash.argon2id.SALTBYTES)
    box_key = nacl.pwhash.argon2id.kdf(
        nacl.secret.SecretBox.KEY_SIZE, passphrase, salt, opslimit=kdf["opslimit"], memlimit=kdf["memlimit"]
    )
    try:
        secrets = json.loads(nacl.secret.SecretBox(box_key).decrypt(b64d(doc["sealed"], "sealed", _err)))
    except CryptoError:
        raise _err("does not open: wrong passphrase or corrupted file", "bad-passphrase") from None
    sk = SigningKey(b64d(secrets["signing_seed"], "seed", _err, size=32))
    if key_id(bytes(sk.verify_key)) != doc["kid"]:
        raise _err("key id does not match the key", "kid-mismatch")
    cks = {k: b64d(v, "content key", _err, size=32) for k, v in secrets["content_keys"].items()}
    vk = VendorKey(doc["label"], sk, cks, secrets["current_content_key"])
    if "content_scopes" in secrets:
        vk.content_scopes, vk.current = dict(secrets["content_scopes"]), dict(secrets["current"])
    else:  # a file written before scoped keys: its keys were the kernel keys of the 0.1 line
        vk.content_scopes = {k: scope_name("kernel", "0.1") for k in cks}
        vk.current = {scope_name("kernel", "0.1"): vk.current_content_key}
    return vk


def read_passphrase(*, file: str | None = None, confirm: bool = False) -> bytes:
    """From ``--passphrase-file``, ``LM_VENDOR_PASSPHRASE_FILE``, ``LM_VENDOR_PASSPHRASE`` or a prompt."""
    path = file or os.environ.get(PASSPHRASE_FILE_ENV)
    if path:
        try:
            return Path(path).read_bytes().rstrip(b"\r\n")
        except OSError as exc:
            raise UsageError(f"cannot read passphrase file {path}: {exc.strerror}") from None
    if os.environ.get(PASSPHRASE_ENV):
        return os.environ[PASSPHRASE_ENV].encode("utf-8")
    try:
        first = getpass.getpass("Vendor key passphrase: ")
        if confirm and getpass.getpass("Repeat passphrase: ") != first:
            raise UsageError("passphrases differ")
    except EOFError:
        raise UsageError("no passphrase: use a prompt, --passphrase-file or LM_VENDOR_PASSPHRASE") from None
    if not first:
        raise UsageError("empty passphrase")
    return first.encode("utf-8")
