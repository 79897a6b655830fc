"""``liquid-memory verify`` and ``liquid-memory license``: the customer's and reviewer's checks.

Both run on a base install. Exit codes: 0 ok, 1 verification failed (or no valid licence), 2 usage error. Output
never contains a secret.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from liquid_memory.errors import LiquidMemoryError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEV_WARNING = (
    "WARNING: this verification trusted the public DEVELOPMENT identity (a development build, or a manifest "
    "signed by the committed development key). Anyone can sign with it: this is not a vendor release."
)


def _iso(ts: object) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime(int(ts))) if isinstance(ts, int) else "?"


def cmd_verify(args: argparse.Namespace) -> int:
    from liquid_memory.manifest import find_distribution_root, verify_path
    from liquid_memory.manifest.verify import VENDOR_KEY_REMEDY

    target = args.path
    if target is None:
        target = find_distribution_root()
        if target is None:
            print("liquid-memory verify: no installed distribution found; give a PATH", file=sys.stderr)
            return EXIT_USAGE
    if not Path(target).exists():
        print(f"liquid-memory verify: {target} does not exist", file=sys.stderr)
        return EXIT_USAGE
    vendor_key = None
    if args.vendor_key is not None:
        from liquid_memory.licensing.public_key import read_public_key

        try:
            vendor_key = read_public_key(args.vendor_key)
        except LiquidMemoryError as exc:
            print(f"liquid-memory verify: {exc}", file=sys.stderr)
            return EXIT_USAGE
    report = verify_path(Path(target), vendor_key=vendor_key, unknown_key_remedy=VENDOR_KEY_REMEDY)
    if report.development:
        print(DEV_WARNING, file=sys.stderr)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    elif report.ok:
        c = report.manifest.comment if report.manifest else {}
        print(f"OK  {report.target}" + ("   [DEVELOPMENT IDENTITY — NOT A RELEASE]" if report.development else ""))
        print(f"    {c.get('product')} {c.get('version')} (release sequence {c.get('sequence')}, scope "
              f"{c.get('scope')}), {len(report.rows)} files, signed by vendor key {c.get('kid')}, manifest valid "
              f"until {_iso(c.get('expires'))}")  # fmt: skip
        if vendor_key is not None:
            print("    trusted: only the --vendor-key given (nothing recorded on this machine)")
    else:
        print(f"FAILED  {report.target}: {len(report.problems)} problem(s)")
        for p in report.problems:
            print(f"  {p.code} {type(p).__name__}{'/' + p.reason if p.reason else ''}: {p.detail}")
        print(f"  what to do: {report.problems[0].remedy}")
    return EXIT_OK if report.ok else EXIT_FAILED


def cmd_license(args: argparse.Namespace) -> int:
    from liquid_memory.licensing import build_kind, current_licence

    try:
        lic = current_licence()
    except LiquidMemoryError as exc:
        if args.json:
            print(json.dumps({"valid": False, "build": build_kind(), **exc.to_dict()}, indent=2))
        else:
            print(f"No valid licence: {exc}", file=sys.stderr)
        return EXIT_FAILED
    claims = {"valid": True, "build": build_kind(), **lic.claims()}
    if args.json:
        print(json.dumps(claims, indent=2))
        return EXIT_OK
    print(f"Licensed to:  {lic.licensee}")
    print(f"Licence id:   {lic.lid}  (vendor key {lic.kid}, {build_kind()} build)")
    if build_kind() == "development":
        print("Build:        DEVELOPMENT (trusts the public development identity; not a vendor release)")
    print(f"Grants:       {', '.join(lic.features) or 'nothing'}")
    print(f"Versions:     {lic.versions or 'any'}")
    print(f"Valid from:   {_iso(lic.not_before)}")
    days = (lic.expires - time.time()) / 86400
    print(f"Expires:      {_iso(lic.expires)}  ({days:.1f} days left)")
    return EXIT_OK


VERIFY_HELP = "verify a distribution's signed MANIFEST.md and every file's size and SHA-256"
LICENSE_HELP = "show who the licence is for, what it grants and when it expires (never the secret)"


def verify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="liquid-memory verify",
        description="Verify a distribution root, a dist_public/ folder, an installed package or a wheel file "
        "(without installing it). Exit 0 ok, 1 verification failed, 2 usage error.",
    )
    p.add_argument("path", nargs="?", type=Path, help="folder or .whl (default: this installation)")
    p.add_argument("--json", action="store_true", help="machine-readable report")
    p.add_argument(
        "--vendor-key", metavar="KEY",
        help="trust exactly this vendor key for this one verification (the line `lm-vendor public-key` prints, "
        "lmpub1.<key id>.<key>, or a file holding it): check a vendor's wheel from any environment before "
        "installing it; nothing is recorded",
    )  # fmt: skip
    return p


def license_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="liquid-memory license",
        description="Read LM_PRIVATE_KEY (or LM_PRIVATE_KEY_FILE), verify it and show its claims. "
        "Exit 0 valid, 1 missing or invalid.",
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    return p


def verify_main(argv: list[str]) -> int:
    return _run(cmd_verify, verify_parser().parse_args(argv))


def license_main(argv: list[str]) -> int:
    return _run(cmd_license, license_parser().parse_args(argv))


def _run(command: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a parsed command, mapping unexpected typed errors to exit 1."""
    try:
        return int(command(args))
    except LiquidMemoryError as exc:
        print(f"liquid-memory: {exc}", file=sys.stderr)
        return EXIT_FAILED
