"""The DEVELOPMENT vendor identity — committed on purpose, for tests and demos ONLY.

Its encrypted private key and passphrase live in ``dev_identity/`` so a fresh clone (or a wheel built
without a vendor trust root) can run the whole flow. Development builds trust it; release builds
(``lm-vendor release`` with a real vendor key) do not, so licences it issues are worthless there.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from liquid_memory_vendor import keystore
from liquid_memory_vendor.issue import issue_licence

DEV_DIR = Path(__file__).resolve().parent / "dev_identity"
DEV_KEY_FILE = DEV_DIR / "vendor.key"
DEV_PASSPHRASE_FILE = DEV_DIR / "DEVELOPMENT_PASSPHRASE.txt"
DEV_LABEL = "Liquid Memory DEVELOPMENT vendor identity (tests and demos only; private key is public)"


@functools.cache
def dev_vendor() -> keystore.VendorKey:
    """Unlock the committed development identity (argon2id; about a second, cached per process)."""
    return keystore.load(DEV_KEY_FILE, DEV_PASSPHRASE_FILE.read_bytes().rstrip(b"\r\n"))


def issue_dev_licence(
    features: tuple[str, ...] | list[str] = ("kernel", "proxy"),
    *,
    licensee: str = "Development and CI (not for production)",
    valid_days: float = 30.0,
    versions: str = "",
) -> str:
    """A licence key signed by the development identity, for tests and the README demo."""
    now = int(time.time())
    return issue_licence(
        dev_vendor(),
        licensee=licensee,
        expires=now + int(valid_days * 86400),
        features=list(features),
        versions=versions,
        issued=now,
    )
