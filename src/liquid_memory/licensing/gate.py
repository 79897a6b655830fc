"""The licence gate: find the key, verify it once per process, re-check its dates on every use."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import warnings
from pathlib import Path

from liquid_memory.errors import LicenseMissing, LicenseTooLarge, RevocationListInvalid
from liquid_memory.licensing.licence import Licence, clean_key_text, parse_licence
from liquid_memory.licensing.revocation import check_rollback, parse_revocation_list
from liquid_memory.licensing.trust import trusted_keys
from liquid_memory.version import __version__

KEY_ENV = "LM_PRIVATE_KEY"
KEY_FILE_ENV = "LM_PRIVATE_KEY_FILE"
REVOCATION_ENV = "LM_REVOCATION_LIST"

MAX_KEY_FILE_BYTES = 1 << 20  # whitespace around a key is ignored, but not without bound
_warned_paths: set[str] = set()
_lock = threading.Lock()
_cache: dict[str, Licence] = {}
# Every kernel call passes the gate (a decode step: hundreds per token), so the key file is re-read and re-hashed
# only when it changed: keyed by path and the file's identity, size, mode and change times (a rewrite, rename or
# chmod changes them). The licence itself is still re-checked against its dates on every call.
_file_memo: dict[str, tuple[tuple[int, ...], str, str]] = {}  # path -> (stat signature, text, digest)
_text_memo: tuple[str, str] | None = None  # the last LM_PRIVATE_KEY value and its digest


def _signature(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mode, st.st_mtime_ns, st.st_ctime_ns)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()


def _read_key_file(path: str) -> str:
    """Read a key file: regular files only (a FIFO or device would block or never end), size-capped."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise LicenseMissing(f"cannot read {KEY_FILE_ENV}={path!r}: {exc.strerror}", reason="file") from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        os.close(fd)
        raise LicenseMissing(f"{KEY_FILE_ENV}={path!r} is not a regular file (FIFO, socket, device or folder)",
                             reason="not-regular-file")  # fmt: skip
    with os.fdopen(fd, "rb") as fh:
        if st.st_mode & 0o077:
            _warn_permissions(path, st.st_mode)
        raw = fh.read(MAX_KEY_FILE_BYTES + 1)
    if len(raw) > MAX_KEY_FILE_BYTES:
        raise LicenseTooLarge(f"{KEY_FILE_ENV} file is larger than {MAX_KEY_FILE_BYTES} bytes")
    return raw.decode("utf-8", errors="replace")


def _warn_permissions(path: str, mode: int) -> None:
    if path not in _warned_paths:
        _warned_paths.add(path)
        warnings.warn(
            f"licence key file {path!r} is readable by group/others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`",
            KeyFilePermissionWarning,
            stacklevel=4,
        )


class KeyFilePermissionWarning(UserWarning):
    """The licence key file can be read by other users of this machine."""


def read_licence_text() -> str:
    """The licence key from ``LM_PRIVATE_KEY`` or the file named by ``LM_PRIVATE_KEY_FILE``."""
    return _licence_text_and_digest()[0]


def _licence_text_and_digest() -> tuple[str, str]:
    """``(key text, its SHA-256)``: from the environment, or the key file (re-read only when its stat changed)."""
    global _text_memo
    text = os.environ.get(KEY_ENV)
    if text is not None and clean_key_text(text):
        memo = _text_memo
        if memo is None or memo[0] != text:
            memo = _text_memo = (text, _digest(text))
        return memo
    path = os.environ.get(KEY_FILE_ENV)
    if path:
        return _key_file_text_and_digest(path)
    if text is not None:
        return text, _digest(text)  # set but blank: let the parser say "empty"
    raise LicenseMissing("no licence key: neither LM_PRIVATE_KEY nor LM_PRIVATE_KEY_FILE is set")


def _key_file_text_and_digest(path: str) -> tuple[str, str]:
    try:
        signature = _signature(os.stat(path))
    except OSError:
        signature = None  # let _read_key_file raise its typed error
    memo = _file_memo.get(path)
    if signature is not None and memo is not None and memo[0] == signature:
        return memo[1], memo[2]
    text = _read_key_file(path)
    digest = _digest(text)
    if signature is not None:
        with _lock:
            _file_memo.clear()
            _file_memo[path] = (signature, text, digest)
    return text, digest


def extra_revocation_list() -> Path | None:
    """``LM_REVOCATION_LIST``: a newer signed list the vendor sent between releases (adds, never replaces)."""
    value = os.environ.get(REVOCATION_ENV)
    return Path(value) if value else None


def verify_licence_text(text: str, *, now: float | None = None, version: str = __version__) -> Licence:
    """Full verification: signature, secret, dates, product version, then revocation.

    The revocation list signed into this installation's distribution is mandatory: a missing or redirected
    distribution, a deleted or swapped list, or an older release refuse with a typed error.
    """
    from liquid_memory.manifest.distribution import bound_revocation_list

    trusted = trusted_keys()
    lic = parse_licence(text, trusted)
    lic.check_time(now)
    lic.check_version(version)
    lists = [bound_revocation_list(trusted)]
    extra = extra_revocation_list()
    if extra is not None:
        try:
            rl_text = extra.read_text(encoding="utf-8", errors="replace")
        except OSError as exc:
            raise RevocationListInvalid(f"cannot read revocation list {extra}: {exc.strerror}") from None
        rl = parse_revocation_list(rl_text, trusted)
        check_rollback(rl)
        lists.append(rl)
    for rl in lists:
        if rl.kid == lic.kid:
            rl.check(lic.lid)
    return lic


def current_licence() -> Licence:
    """The verified licence of this process (cached per key value; dates re-checked every call)."""
    text, digest = _licence_text_and_digest()
    with _lock:
        lic = _cache.get(digest)
    if lic is None:
        lic = verify_licence_text(text)
        with _lock:
            _cache.clear()
            _cache[digest] = lic
    else:
        lic.check_time()
    return lic


def require_feature(feature: str) -> Licence:
    """Raise a typed licence error unless a valid licence granting ``feature`` is set."""
    lic = current_licence()
    lic.check_feature(feature)
    return lic


def reset_cache() -> None:
    """Forget the verified licence (tests; a long-running process after a key rotation)."""
    with _lock:
        _cache.clear()
        _file_memo.clear()
