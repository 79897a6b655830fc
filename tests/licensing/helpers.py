"""Test helpers: throwaway vendors, hand-made (possibly hostile) licences and manifests."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

from liquid_memory_vendor import keystore
from liquid_memory_vendor.keystore import VendorKey
from nacl.public import PrivateKey, SealedBox

from liquid_memory.licensing.encoding import DOMAIN_LICENCE, b64e, canonical_json, signed_message
from liquid_memory.manifest.format import Row, assemble, manifest_message, render_body


def make_vendor(label: str = "throwaway test vendor") -> VendorKey:
    return keystore.generate(label)


def claims_for(vk: VendorKey, secret: PrivateKey, **over: object) -> dict[str, object]:
    now = int(time.time())
    sealer = SealedBox(secret.public_key)
    claims: dict[str, object] = {
        "v": 1,
        "kid": vk.kid,
        "lid": "lic_" + hashlib.sha256(str(over).encode()).hexdigest()[:16],
        "licensee": "Acme Test",
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "features": ["kernel", "proxy"],
        "versions": "",
        "lpk": b64e(bytes(secret.public_key)),
        "cks": {ck: b64e(sealer.encrypt(key)) for ck, key in vk.content_keys.items()},
    }
    claims.update(over)
    return claims


def licence_from_payload(vk: VendorKey, payload: bytes, secret: PrivateKey) -> str:
    sig = vk.sign(signed_message(DOMAIN_LICENCE, payload))
    return f"lmk1.{b64e(payload)}.{b64e(sig)}.{b64e(bytes(secret))}"


def make_licence(vk: VendorKey, secret: PrivateKey | None = None, **over: object) -> str:
    secret = secret or PrivateKey.generate()
    return licence_from_payload(vk, canonical_json(claims_for(vk, secret, **over)), secret)


def write_manifest(
    vk: VendorKey,
    root: Path,
    rows: list[Row] | None = None,
    *,
    expires_in: int = 3600,
    version: str = "0.1.0",
    sequence: int = 1,
    scope: str = "source",
    revocation_seq: int = 0,
) -> bytes:
    """Sign a manifest over ``rows`` (default: the files actually under root/dist_public)."""
    if rows is None:
        rows = []
        for p in sorted((root / "dist_public").rglob("*")):
            if p.is_file() and not p.is_symlink():
                data = p.read_bytes()
                rows.append(Row(p.relative_to(root).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
    body = render_body(rows, product="liquid-memory", version=version)
    now = int(time.time())
    comment = {"product": "liquid-memory", "version": version, "issued": now, "expires": now + expires_in,
               "kid": vk.kid, "files": len(rows), "sequence": sequence, "scope": scope,
               "revocation_seq": revocation_seq}  # fmt: skip
    cb = json.dumps(comment, sort_keys=True, separators=(",", ":")).encode()
    data = assemble(body, cb, vk.sign(manifest_message(body, cb)))
    (root / "MANIFEST.md").write_bytes(data)
    return data


def make_dist(vk: VendorKey, root: Path, *, sequence: int = 1, revoked: tuple[str, ...] = (), rl_seq: int = 0) -> Path:
    """A small signed distribution: three files, one in a subfolder, and the vendor's revocation list."""
    from liquid_memory_vendor.issue import sign_revocation_list

    (root / "dist_public" / "sub").mkdir(parents=True, exist_ok=True)
    (root / "dist_public" / "a.bin").write_bytes(bytes(range(256)) * 4)
    (root / "dist_public" / "b.json").write_text('{"x": 1}\n')
    (root / "dist_public" / "sub" / "c.txt").write_text("hello\n")
    (root / "dist_public" / "revocations.lmr").write_text(sign_revocation_list(vk, list(revoked), rl_seq) + "\n")
    write_manifest(vk, root, sequence=sequence, revocation_seq=rl_seq)
    return root


def make_installed_release(vk: VendorKey, site: Path, *, sequence: int = 1, revoked: tuple[str, ...] = (),
                           rl_seq: int = 0) -> Path:  # fmt: skip
    """A minimal installed release under ``site``: ``liquid_memory/`` with dist_public and a wheel-scope manifest."""
    from liquid_memory_vendor.issue import sign_revocation_list

    pkg = site / "liquid_memory"
    (pkg / "dist_public").mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text('__version__ = "0.1.0"\n')
    (site / "liquid_memory-0.1.0.dist-info").mkdir(exist_ok=True)
    (site / "liquid_memory-0.1.0.dist-info" / "METADATA").write_text("Metadata-Version: 2.1\nVersion: 0.1.0\n\n")
    (pkg / "dist_public" / "revocations.lmr").write_text(sign_revocation_list(vk, list(revoked), rl_seq) + "\n")
    rows = []
    for p in sorted(site.rglob("*")):
        if p.is_file() and p.name != "MANIFEST.md":
            data = p.read_bytes()
            rows.append(Row(p.relative_to(site).as_posix(), len(data), hashlib.sha256(data).hexdigest()))
    data = write_manifest(vk, site, rows, sequence=sequence, scope="wheel", revocation_seq=rl_seq)
    (site / "MANIFEST.md").unlink()
    (pkg / "MANIFEST.md").write_bytes(data)
    write_installed_record(site, [r.path for r in rows])
    return pkg


def write_installed_record(site: Path, paths: list[str]) -> None:
    """The RECORD pip writes on install: every installed path, the manifest, and its own files."""
    info = "liquid_memory-0.1.0.dist-info"
    extra = ["liquid_memory/MANIFEST.md", f"{info}/INSTALLER", f"{info}/RECORD"]
    (site / "liquid_memory-0.1.0.dist-info" / "INSTALLER").write_text("pip\n")
    lines = [f"{p},," for p in sorted([*paths, *extra])]
    (site / "liquid_memory-0.1.0.dist-info" / "RECORD").write_text("\n".join(lines) + "\n")
