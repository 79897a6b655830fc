"""MANIFEST.md: the one module that owns the manifest's byte format (README_INTEGRATION.md §Formats).

Layout: a Markdown body (title, prose, a table ``| file | size | sha256 |``) followed by one signature
block. The Ed25519 signature covers ``"lm-manifest-v1" 0x00 len(body) (8 bytes BE) body comment``
where ``comment`` is the canonical-JSON trusted comment (product, version, issued, expires, kid, files,
sequence, scope, revocation_seq) — minisign's trusted-comment idea, so none of them can be edited.

Scopes: ``wheel`` lists every file of a wheel (all RECORD entries but RECORD itself and this manifest),
by its path inside the wheel; ``source`` (source checkouts and development installs only) lists
``dist_public/`` relative to the manifest's folder. ``sequence`` is the vendor's monotonic release number
(rollback protection); ``revocation_seq`` binds the revocation list shipped inside the distribution.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from liquid_memory.errors import ManifestInvalid, ManifestUnsafePath, ManifestUnsigned
from liquid_memory.licensing.encoding import (
    DOMAIN_MANIFEST,
    b64d,
    b64e,
    parse_canonical_json,
    signed_message,
)

SIG_START = "<!-- lm-manifest-signature-v1\n"
TABLE_HEADER = "| file | size | sha256 |\n|---|---:|---|\n"
MAX_MANIFEST_BYTES = 1 << 20
COMMENT_FIELDS = {"product", "version", "issued", "expires", "kid", "files", "sequence", "scope", "revocation_seq"}
INT_FIELDS = ("issued", "expires", "files", "sequence", "revocation_seq")
SCOPES = ("wheel", "source")
PACKAGE = "liquid_memory"
_ROW = re.compile(r"\| ([^|\s]+) \| (0|[1-9][0-9]{0,14}) \| ([0-9a-f]{64}) \|")
_PATH_PART = re.compile(r"[A-Za-z0-9._+-]+")
_SIG_BLOCK = re.compile(r"trusted-comment: (\{[^\n]*\})\nsignature: ([A-Za-z0-9_-]+)\n-->\n")


@dataclass(frozen=True)
class Row:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    body: bytes
    comment: dict[str, object]
    comment_bytes: bytes
    signature: bytes

    @property
    def kid(self) -> str:
        return str(self.comment["kid"])

    @property
    def scope(self) -> str:
        return str(self.comment["scope"])

    @property
    def prefix(self) -> str:
        """Where the package's own files (``dist_public/`` ...) sit relative to the listed paths' root."""
        return PACKAGE + "/" if self.scope == "wheel" else ""

    def message(self) -> bytes:
        return manifest_message(self.body, self.comment_bytes)


def manifest_message(body: bytes, comment_bytes: bytes) -> bytes:
    """The exact bytes the vendor signs."""
    return signed_message(DOMAIN_MANIFEST, len(body).to_bytes(8, "big") + body + comment_bytes)


def check_path(path: str, scope: str = "source") -> None:
    """One canonical relative POSIX spelling: no ``..``, ``.``, ``//``, absolute or odd characters."""
    if path.startswith("/") or re.match(r"[A-Za-z]:", path) or "\\" in path:
        raise ManifestUnsafePath(f"absolute or non-POSIX path: {path[:80]!r}", reason="absolute")
    parts = path.split("/")
    if any(p in ("", ".", "..") for p in parts):
        raise ManifestUnsafePath(f"path traversal or empty component: {path[:80]!r}", reason="traversal")
    if not all(_PATH_PART.fullmatch(p) for p in parts):
        raise ManifestUnsafePath(f"disallowed characters in path: {path[:80]!r}", reason="characters")
    if scope == "source" and (parts[0] != "dist_public" or len(parts) < 2):
        raise ManifestUnsafePath(f"a source manifest may only list dist_public/: {path[:80]!r}", reason="outside")


def render_body(rows: list[Row], *, product: str, version: str) -> bytes:
    lines = [
        f"# {product} {version} — distribution manifest",
        "",
        "Every file of this distribution with its size in bytes and SHA-256. The vendor's Ed25519",
        "signature below covers this whole text and the trusted comment (product, version, release",
        "sequence, scope, expiry, key id). Check it before installing: `liquid-memory verify PATH`.",
        "",
        TABLE_HEADER.rstrip("\n"),
    ]
    lines += [f"| {r.path} | {r.size} | {r.sha256} |" for r in sorted(rows, key=lambda r: r.path)]
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def assemble(body: bytes, comment_bytes: bytes, signature: bytes) -> bytes:
    block = f"{SIG_START}trusted-comment: {comment_bytes.decode('ascii')}\nsignature: {b64e(signature)}\n-->\n"
    return body + block.encode("ascii")


def _invalid(msg: str, reason: str) -> ManifestInvalid:
    return ManifestInvalid(f"MANIFEST.md {msg}", reason=reason)


def parse_rows(body: bytes, scope: str = "source") -> tuple[Row, ...]:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("is not UTF-8", "encoding") from None
    if text.count(TABLE_HEADER) != 1:
        raise _invalid("must contain exactly one file table", "no-table")
    table = text.split(TABLE_HEADER, 1)[1]
    rows: list[Row] = []
    for line in table.split("\n"):
        if not line:
            break
        m = _ROW.fullmatch(line)
        if not m:
            raise _invalid(f"has a malformed table row: {line[:80]!r}", "bad-row")
        check_path(m.group(1), scope)
        rows.append(Row(m.group(1), int(m.group(2)), m.group(3)))
    rest = table.split("\n\n", 1)[1] if "\n\n" in table else ""
    if any(line.startswith("|") for line in rest.split("\n")):
        raise _invalid("has table rows outside the file table", "bad-row")
    paths = [r.path for r in rows]
    if len({p.casefold() for p in paths}) != len(paths):
        raise _invalid("lists a file twice (or two paths differing only in case)", "duplicate-row")
    if paths != sorted(paths):
        raise _invalid("rows are not sorted by path", "unsorted")
    return tuple(rows)


def parse_manifest(data: bytes) -> Manifest:
    """Split body / trusted comment / signature (verifies nothing; see ``verify.py``)."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise _invalid("is larger than 1 MiB", "too-large")
    marker = SIG_START.encode("ascii")
    count = data.count(marker)
    if count == 0:
        raise ManifestUnsigned("MANIFEST.md has no signature block", reason="unsigned")
    if count > 1:
        raise _invalid("has more than one signature block", "bad-signature-block")
    body, block = data.split(marker, 1)
    try:
        m = _SIG_BLOCK.fullmatch(block.decode("ascii"))
    except UnicodeDecodeError:
        m = None
    if not m:
        raise _invalid("has a malformed signature block", "bad-signature-block")
    comment_bytes = m.group(1).encode("ascii")
    comment = parse_canonical_json(comment_bytes, "trusted comment", _invalid)
    if set(comment) != COMMENT_FIELDS:
        raise _invalid("trusted comment has wrong fields", "bad-comment")
    if not all(type(comment[k]) is int and comment[k] >= 0 for k in INT_FIELDS):  # type: ignore[operator]
        raise _invalid("trusted comment times/counts must be non-negative integers", "bad-comment")
    if not all(isinstance(comment[k], str) for k in ("product", "version", "kid")):
        raise _invalid("trusted comment fields must be strings", "bad-comment")
    if comment["scope"] not in SCOPES:
        raise _invalid(f"trusted comment scope must be one of {SCOPES}", "bad-comment")
    signature = b64d(m.group(2), "signature", _invalid, size=64)
    return Manifest(body=body, comment=comment, comment_bytes=comment_bytes, signature=signature)


def signed_rows(manifest: Manifest) -> tuple[Row, ...]:
    """The file table — call only after the signature verified."""
    rows = parse_rows(manifest.body, manifest.scope)
    if manifest.comment["files"] != len(rows):
        raise _invalid("row count differs from the signed file count", "row-count")
    return rows
