"""Signed MANIFEST.md: hostile distributions are reported with the precise typed error."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import zipfile

import pytest

from liquid_memory import errors as E
from liquid_memory.cli import main
from liquid_memory.manifest import verify_path
from liquid_memory.manifest.format import Row
from tests.licensing.helpers import make_dist, write_manifest


def _codes(report) -> list[tuple[str, str]]:
    return [(type(p).__name__, p.reason) for p in report.problems]


def _rows(root) -> list[Row]:
    out = []
    for p in sorted((root / "dist_public").rglob("*")):
        if p.is_file():
            d = p.read_bytes()
            out.append(Row(p.relative_to(root).as_posix(), len(d), hashlib.sha256(d).hexdigest()))
    return out


def _replace_in_manifest(root, old: bytes, new: bytes) -> None:
    data = (root / "MANIFEST.md").read_bytes()
    assert old in data
    (root / "MANIFEST.md").write_bytes(data.replace(old, new, 1))


@pytest.fixture
def dist(trusted_vendor, tmp_path):
    return make_dist(trusted_vendor, tmp_path / "dist")


def test_clean_distribution_verifies(dist):
    report = verify_path(dist)
    assert report.ok, _codes(report)
    assert [r.path for r in report.rows] == [
        "dist_public/a.bin",
        "dist_public/b.json",
        "dist_public/revocations.lmr",
        "dist_public/sub/c.txt",
    ]
    assert verify_path(dist / "dist_public").ok  # a dist_public/ folder: manifest in its parent


def _strip_signature(root, v, s):
    data = (root / "MANIFEST.md").read_bytes()
    (root / "MANIFEST.md").write_bytes(data.split(b"<!-- lm-manifest-signature-v1")[0])


def _double_block(root, v, s):
    data = (root / "MANIFEST.md").read_bytes()
    block = data[data.index(b"<!-- lm-manifest") :]
    (root / "MANIFEST.md").write_bytes(data + block)


def _edit_hash(root, v, s):
    row = _rows(root)[0]
    _replace_in_manifest(root, row.sha256.encode(), hashlib.sha256(b"evil").hexdigest().encode())


def _add_row(root, v, s):
    row = _rows(root)[-1]
    line = f"| {row.path} | {row.size} | {row.sha256} |\n".encode()
    _replace_in_manifest(root, line, line + b"| dist_public/zz.bin | 1 | " + b"0" * 64 + b" |\n")


def _remove_row(root, v, s):
    row = _rows(root)[0]
    _replace_in_manifest(root, f"| {row.path} | {row.size} | {row.sha256} |\n".encode(), b"")


def _edit_comment(root, v, s):
    _replace_in_manifest(root, b'"version":"0.1.0"', b'"version":"9.9.9"')


def _stranger_with_trusted_kid(root, v, s):
    write_manifest(s, root)
    _replace_in_manifest(root, f'"kid":"{s.kid}"'.encode(), f'"kid":"{v.kid}"'.encode())


def _signed_rows(extra: Row):
    def mutate(root, v, s):
        write_manifest(v, root, sorted(_rows(root) + [extra], key=lambda r: r.path))

    return mutate


def _extra_file(root, v, s):
    (root / "dist_public" / "extra.so").write_bytes(b"\x7fELF")


def _missing_file(root, v, s):
    (root / "dist_public" / "b.json").unlink()


def _symlink_file(root, v, s):
    target = root / "dist_public" / "b.json"
    shutil.move(target, root / "outside.json")
    os.symlink(root / "outside.json", target)


def _symlink_dir(root, v, s):
    os.symlink(root / "dist_public" / "sub", root / "dist_public" / "linkdir")


def _size_mismatch(root, v, s):
    with open(root / "dist_public" / "a.bin", "ab") as fh:
        fh.write(b"!")


def _same_size_other_bytes(root, v, s):
    (root / "dist_public" / "b.json").write_text('{"x": 2}\n')


def _expired(root, v, s):
    write_manifest(v, root, expires_in=-1)


def _missing_manifest(root, v, s):
    (root / "MANIFEST.md").unlink()


def _noncanonical_sig(root, v, s):
    data = (root / "MANIFEST.md").read_bytes()
    head, sig = data.rsplit(b"signature: ", 1)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = sig[85:86]
    sig = sig[:85] + bytes([alphabet[alphabet.index(last) | 1]]) + sig[86:]
    (root / "MANIFEST.md").write_bytes(head + b"signature: " + sig)


def _manifest_symlink(root, v, s):
    shutil.move(root / "MANIFEST.md", root / "real.md")
    os.symlink(root / "real.md", root / "MANIFEST.md")


ZERO = "0" * 64
CASES = {
    "unsigned": (_strip_signature, E.ManifestUnsigned, "unsigned"),
    "two-signature-blocks": (_double_block, E.ManifestInvalid, "bad-signature-block"),
    "other-signer": (lambda root, v, s: write_manifest(s, root), E.ManifestSignatureInvalid, "unknown-key"),
    "other-signer-claims-trusted-kid": (
        _stranger_with_trusted_kid,
        E.ManifestSignatureInvalid,
        "bad-signature",
    ),
    "edited-row": (_edit_hash, E.ManifestSignatureInvalid, "bad-signature"),
    "added-row": (_add_row, E.ManifestSignatureInvalid, "bad-signature"),
    "removed-row": (_remove_row, E.ManifestSignatureInvalid, "bad-signature"),
    "edited-version": (_edit_comment, E.ManifestSignatureInvalid, "bad-signature"),
    "non-canonical-signature": (_noncanonical_sig, E.ManifestInvalid, "non-canonical-base64"),
    "dotdot-path": (
        _signed_rows(Row("dist_public/../etc/passwd", 1, ZERO)),
        E.ManifestUnsafePath,
        "traversal",
    ),
    "absolute-path": (_signed_rows(Row("/etc/passwd", 1, ZERO)), E.ManifestUnsafePath, "absolute"),
    "backslash-path": (_signed_rows(Row("dist_public\\x.bin", 1, ZERO)), E.ManifestUnsafePath, "absolute"),
    "outside-dist-public": (_signed_rows(Row("setup.py", 1, ZERO)), E.ManifestUnsafePath, "outside"),
    "extra-file": (_extra_file, E.ManifestExtraFile, "extra"),
    "missing-file": (_missing_file, E.ManifestFileMissing, "missing"),
    "symlinked-file": (_symlink_file, E.ManifestSymlink, "symlink"),
    "symlinked-dir": (_symlink_dir, E.ManifestSymlink, "symlink"),
    "manifest-is-symlink": (_manifest_symlink, E.ManifestSymlink, "manifest-symlink"),
    "size-mismatch": (_size_mismatch, E.ManifestSizeMismatch, "size"),
    "same-size-other-bytes": (_same_size_other_bytes, E.ManifestHashMismatch, "hash"),
    "expired": (_expired, E.ManifestExpired, ""),
    "missing-manifest": (_missing_manifest, E.ManifestMissing, ""),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_manifest(name, dist, trusted_vendor, stranger, capsys):
    mutate, cls, reason = CASES[name]
    mutate(dist, trusted_vendor, stranger)
    report = verify_path(dist)
    assert not report.ok
    assert (cls.__name__, reason) in _codes(report), _codes(report)
    # the CLI reports it as exit 1 with the code, never a traceback
    assert main(["verify", str(dist), "--json"]) == 1
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err and cls.code in out.out


def _wheel_from(dist, path, extra: dict[str, bytes] | None = None, symlink: str | None = None):
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("liquid_memory/__init__.py", "")
        zf.write(dist / "MANIFEST.md", "liquid_memory/MANIFEST.md")
        for p in sorted((dist / "dist_public").rglob("*")):
            if p.is_file():
                zf.write(p, "liquid_memory/" + p.relative_to(dist).as_posix())
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_wheel_verifies_without_installing(dist, tmp_path):
    assert verify_path(_wheel_from(dist, tmp_path / "ok.whl")).ok


@pytest.mark.parametrize(
    ("extra", "symlink", "expected"),
    [
        ({"liquid_memory/dist_public/evil.so": b"x"}, None, ("ManifestExtraFile", "extra")),
        ({"liquid_memory/dist_public/../../evil.pth": b"x"}, None, ("ManifestUnsafePath", "traversal")),
        ({}, "liquid_memory/dist_public/link", ("ManifestSymlink", "symlink")),
    ],
)
def test_hostile_wheel(dist, tmp_path, extra, symlink, expected):
    report = verify_path(_wheel_from(dist, tmp_path / "bad.whl", extra, symlink))
    assert expected in _codes(report), _codes(report)


def test_wheel_with_tampered_member(dist, tmp_path):
    (dist / "dist_public" / "b.json").write_text('{"x": 3}\n')
    report = verify_path(_wheel_from(dist, tmp_path / "t.whl"))
    assert ("ManifestHashMismatch", "hash") in _codes(report)


def test_not_a_wheel(tmp_path):
    (tmp_path / "x.whl").write_bytes(b"PK-not-really")
    report = verify_path(tmp_path / "x.whl")
    assert _codes(report) == [("ManifestInvalid", "bad-target")]


def test_every_problem_is_reported(dist):
    _extra_file(dist, None, None)
    _missing_file(dist, None, None)
    _size_mismatch(dist, None, None)
    assert {c for c, _ in _codes(verify_path(dist))} == {"ManifestExtraFile", "ManifestFileMissing",
                                                          "ManifestSizeMismatch"}  # fmt: skip


def test_verify_exit_codes(dist, tmp_path, capsys):
    assert main(["verify", str(dist)]) == 0
    assert "OK" in capsys.readouterr().out
    assert main(["verify", str(tmp_path / "does-not-exist")]) == 2
    with pytest.raises(SystemExit) as info:
        main(["verify", "--bogus"])
    assert info.value.code == 2
