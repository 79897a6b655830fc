"""`liquid-memory-proxy`: serve the proxy, or print its settings (`env`).

liquid-memory-proxy [serve] [--host 127.0.0.1] [--port 8000] [--log-level INFO]
liquid-memory-proxy env                           (print the environment-variable table)

Its benchmarks run from a checkout: `python -m benchmarks proxy-extraction | proxy-memory | proxy-overhead`.
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def _serve_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liquid-memory-proxy",
        description="OpenAI-compatible proxy that compresses long documents before calling the LLM. "
        "Configuration comes from environment variables (`liquid-memory-proxy env` lists them). "
        "Subcommand: `env` (settings table).",
    )
    parser.add_argument("--host", default=None, help="interface to listen on (default PROXY_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="TCP port (default PROXY_PORT or 8000)")
    parser.add_argument("--log-level", default=None, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    return parser


def _print_env() -> int:
    from liquid_memory_proxy.settings import settings_table

    for env, default, description in settings_table():
        print(f"{env:40} {default:22} {description}")
    return 0


def _serve(argv: list[str]) -> int:
    args = _serve_parser().parse_args(argv)
    from liquid_memory_proxy.settings import ProxySettings

    overrides = {
        k: v
        for k, v in {"proxy_host": args.host, "proxy_port": args.port, "log_level": args.log_level}.items()
        if v is not None
    }
    try:
        settings = ProxySettings(**overrides)
    except ValidationError as exc:
        print(f"liquid-memory-proxy: invalid configuration:\n{exc}", file=sys.stderr)
        return 2
    import uvicorn
    from liquid_memory_proxy.app import create_app

    app = create_app(settings)
    uvicorn.run(
        app,
        host=settings.proxy_host,
        port=settings.proxy_port,
        log_level=settings.log_level.lower(),
        access_log=False,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "env":
        return _print_env()
    if argv and argv[0] == "serve":
        argv = argv[1:]
    return _serve(argv)


if __name__ == "__main__":
    sys.exit(main())
