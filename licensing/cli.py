"""``lm-vendor``: the vendor's tool — keys, licences, revocation, releases. Run ``lm-vendor CMD --help``.

Secrets never come from the command line: the passphrase is read from ``--passphrase-file``,
``LM_VENDOR_PASSPHRASE_FILE``, ``LM_VENDOR_PASSPHRASE`` or a prompt; licence keys are written to a
0600 file or stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from liquid_memory_vendor import keystore
from liquid_memory_vendor.issue import issue_licence, parse_date, revoke

from liquid_memory.errors import LiquidMemoryError, UsageError, VendorKeyInvalid
from liquid_memory.licensing.encoding import b64d, key_id


def _key_error(msg: str, reason: str) -> VendorKeyInvalid:
    return VendorKeyInvalid(msg, reason=reason)


def _unlock(args: argparse.Namespace) -> keystore.VendorKey:
    if args.dev:
        from liquid_memory_vendor.dev import dev_vendor

        return dev_vendor()
    return keystore.load(args.home / "vendor.key", keystore.read_passphrase(file=args.passphrase_file))


def cmd_init(args: argparse.Namespace) -> int:
    path = args.home / "vendor.key"
    if path.exists() and not args.force:
        raise UsageError(f"{path} exists; use --force to replace it (licences it issued stop verifying)")
    vk = keystore.generate(args.label)
    keystore.save(vk, path, keystore.read_passphrase(file=args.passphrase_file, confirm=True))
    print(f"vendor key {vk.kid} written to {path} (argon2id + SecretBox encrypted)")
    print(f"trust entry (public): {vk.trust_entry()}")
    return 0


def cmd_issue(args: argparse.Namespace) -> int:
    features = [f.strip() for f in args.features.split(",") if f.strip()]
    if not features:
        raise UsageError("--features needs at least one feature, e.g. kernel,proxy")
    vk = _unlock(args)
    nbf = parse_date(args.not_before, end_of_day=False) if args.not_before else None
    expires = parse_date(args.expires, end_of_day=True)
    if (int(time.time()) if nbf is None else nbf) >= expires:
        raise UsageError("the licence would expire before it becomes valid: --not-before (default: now) must be "
                         "before --expires")  # fmt: skip
    key = issue_licence(vk, licensee=args.licensee, expires=expires, features=features, versions=args.versions,
                        not_before=nbf)  # fmt: skip
    if args.out:
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        os.chmod(args.out, 0o600)
        print(f"licence written to {args.out} (mode 0600)", file=sys.stderr)
    else:
        print(key)
    return 0


def _read_key_input(args: argparse.Namespace) -> str:
    if args.file == "-":
        return sys.stdin.read(8192)
    if args.file:
        return Path(args.file).read_text(errors="replace")[:8192]
    from liquid_memory.licensing.gate import read_licence_text

    return read_licence_text()


def _vendor_public_key(path: Path) -> tuple[str, bytes]:
    """The (kid, public key) a vendor.key file declares — refused unless the key id belongs to the key."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        kid, public_b64 = doc["kid"], doc["public_key"]
    except (OSError, ValueError, KeyError, TypeError):
        raise VendorKeyInvalid(f"{path} is not a readable vendor key file", reason="bad-format") from None
    public = b64d(public_b64, "vendor public key", _key_error, size=32)
    if not isinstance(kid, str) or key_id(public) != kid:
        raise VendorKeyInvalid(f"{path}: key id {str(kid)[:20]!r} does not match its public key", reason="kid-mismatch")
    return kid, public


def cmd_inspect(args: argparse.Namespace) -> int:
    """Show a licence's claims, verified against this build's trust root plus the vendor's own key."""
    from liquid_memory.licensing import parse_licence, trusted_keys

    trusted = trusted_keys()
    if (args.home / "vendor.key").exists():
        kid, public = _vendor_public_key(args.home / "vendor.key")
        trusted[kid] = public
    lic = parse_licence(_read_key_input(args), trusted)
    claims = lic.claims()
    now = time.time()
    claims["status"] = "expired" if now >= lic.expires else "not yet valid" if now < lic.not_before else "valid"
    print(json.dumps(claims, indent=2))
    return 0


def cmd_revoke(args: argparse.Namespace) -> int:
    if not re.fullmatch(r"lic_[0-9a-f]{16}", args.licence_id):
        raise UsageError(f"{args.licence_id!r} is not a licence id (lic_ + 16 hex digits; see lm-vendor inspect)")
    path, seq = revoke(_unlock(args), args.home, args.licence_id)
    print(f"revoked {args.licence_id}; signed list seq {seq} written to {path} (ship it in the next release "
          f"or give it to customers as LM_REVOCATION_LIST)")  # fmt: skip
    return 0


def cmd_release(args: argparse.Namespace) -> int:
    from liquid_memory_vendor import release
    from liquid_memory_vendor.export import modified_tracked_files

    vk = _unlock(args)
    repo = args.repo.resolve()
    prebuilt = args.prebuilt if args.prebuilt.is_absolute() else repo / args.prebuilt
    if args.rebuild or not any(prebuilt.glob("*.pt2.json")):
        cmd = [sys.executable, str(repo / "tools" / "build_artifacts.py"), "--out", str(prebuilt)]
        subprocess.run(cmd, cwd=repo, check=True)
    built = release.load_prebuilt(prebuilt)
    modified = [] if args.no_wheel else modified_tracked_files(repo)  # a wheel needs a git checkout: ask first
    release_build = not args.dev and not args.no_wheel
    kernel = (args.kernel_lib or release.find_kernel_library(repo)) if release_build else args.kernel_lib
    release.write_dist_public(vk, repo, built, args.home, kernel_library=kernel)
    sequence = release.next_sequence(args.home)
    release.sign_manifest(vk, repo, sequence=sequence, valid_days=args.manifest_days)
    print(f"dist_public/ and MANIFEST.md written and signed by {vk.kid} (release sequence {sequence})")
    if not args.no_wheel:
        if modified:
            print(f"lm-vendor: warning: {len(modified)} tracked file(s) differ from the commit the release records "
                  f"(e.g. {modified[0]}); the wheel is built from the work tree as it is", file=sys.stderr)  # fmt: skip
        wheel = release.release_wheel(vk, repo, args.wheel_dir.resolve(), release_build=not args.dev,
                                      sequence=sequence, valid_days=args.manifest_days)  # fmt: skip
        print(f"wheel: {wheel} ({'development' if args.dev else 'release'} build from a clean export of the "
              "tracked files, every file signed)")  # fmt: skip
    return 0


def cmd_public_key(args: argparse.Namespace) -> int:
    """Print the vendor's verification key as the one published line (no passphrase: the key is public)."""
    from liquid_memory.licensing.public_key import format_public_key

    if args.dev:
        from liquid_memory_vendor.dev import DEV_KEY_FILE

        _, public = _vendor_public_key(DEV_KEY_FILE)
    else:
        _, public = _vendor_public_key(args.home / "vendor.key")
    print(format_public_key(public))
    return 0


def cmd_rotate(args: argparse.Namespace) -> int:
    from liquid_memory_vendor.keystore import release_line

    from liquid_memory.version import __version__

    if args.dev:
        raise UsageError("the committed DEVELOPMENT identity is not rotated (its file is part of the repository)")
    passphrase = keystore.read_passphrase(file=args.passphrase_file)
    vk = keystore.load(args.home / "vendor.key", passphrase)
    line = args.line or release_line(__version__)
    ckid = vk.rotate(args.feature, line)
    keystore.save(vk, args.home / "vendor.key", passphrase)
    print(f"new content key {ckid} for {args.feature}@{line}; releases from now on use it, licences issued "
          f"from now on carry it (older keys of the scope stay, for older releases)")  # fmt: skip
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lm-vendor", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        type=Path,
        default=keystore.default_home(),
        help="vendor folder holding vendor.key (default $LM_VENDOR_HOME or ~/.liquid-memory-vendor)",
    )
    common.add_argument("--passphrase-file", help="file holding the vendor key passphrase")
    common.add_argument("--dev", action="store_true",
                        help="use the committed DEVELOPMENT identity (tests and demos only)")  # fmt: skip
    sub = p.add_subparsers(dest="command", required=True)
    s = sub.add_parser("init", parents=[common], help="create a vendor signing key (encrypted at rest)")
    s.add_argument("--label", default="Liquid Memory vendor", help="human-readable name stored with the key")
    s.add_argument("--force", action="store_true", help="replace an existing key")
    s.set_defaults(func=cmd_init)
    s = sub.add_parser("issue", parents=[common], help="issue a licence key")
    s.add_argument("--licensee", required=True)
    s.add_argument(
        "--expires",
        required=True,
        help="YYYY-MM-DD (valid through that day: 23:59:59 UTC) or an ISO-8601 time, e.g. 2027-01-01T12:00Z",
    )
    s.add_argument("--features", required=True, help="comma-separated, e.g. kernel,proxy")
    s.add_argument("--versions", default="", help="product versions covered, e.g. '>=0.1,<1' (default: any)")
    s.add_argument(
        "--not-before", help="YYYY-MM-DD (valid from that day's start: 00:00:00 UTC) or an ISO-8601 time (default: now)"
    )
    s.add_argument("--out", help="write the key to this file (mode 0600) instead of stdout")
    s.set_defaults(func=cmd_issue)
    s = sub.add_parser("inspect", parents=[common], help="show a licence key's claims (never its secret)")
    s.add_argument("file", nargs="?", help="key file, '-' for stdin; default LM_PRIVATE_KEY(_FILE)")
    s.set_defaults(func=cmd_inspect)
    s = sub.add_parser("revoke", parents=[common], help="add a licence id to the signed revocation list")
    s.add_argument("licence_id")
    s.set_defaults(func=cmd_revoke)
    s = sub.add_parser("release", parents=[common], help="encrypt artifacts, sign MANIFEST.md, build the wheel")
    s.add_argument("--repo", type=Path, default=Path.cwd(), help="source checkout (default: current folder)")
    s.add_argument("--prebuilt", type=Path, default=Path(".lm-build/artifacts"),
                   help="folder of tools/build_artifacts.py output (default .lm-build/artifacts)")  # fmt: skip
    s.add_argument("--rebuild", action="store_true", help="rebuild the artifacts even if --prebuilt has them")
    s.add_argument("--manifest-days", type=int, default=730, help="manifest signature validity (days)")
    s.add_argument("--wheel-dir", type=Path, default=Path("dist"))
    s.add_argument("--no-wheel", action="store_true", help="only write dist_public/ and MANIFEST.md")
    s.add_argument("--kernel-lib", type=Path, default=None,
                   help="built liquid_memory/_C*.so to encrypt into the release (default: the checkout's)")  # fmt: skip
    s.set_defaults(func=cmd_release)
    s = sub.add_parser(
        "public-key",
        parents=[common],
        help="print the vendor's public verification key as one line to publish (lmpub1.<key id>.<key>)",
        description="Prints lmpub1.<key id>.<base64url Ed25519 public key>: publish it beside your releases; a "
        "reviewer checks a wheel with `liquid-memory verify WHEEL --vendor-key LINE`. Needs no passphrase.",
    )
    s.set_defaults(func=cmd_public_key)
    s = sub.add_parser("rotate-content-key", parents=[common], help="new content key for one feature + release line")
    s.add_argument("--feature", default="kernel", help="feature the key unlocks (default kernel)")
    s.add_argument("--line", default=None, help="release line major.minor (default: this version's)")
    s.set_defaults(func=cmd_rotate)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except LiquidMemoryError as exc:
        print(f"lm-vendor: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, UsageError) else 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
