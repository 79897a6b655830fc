"""Settings from the environment, the documented env table, and the console script."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from liquid_memory_proxy.cli import main
from liquid_memory_proxy.settings import ProxySettings, settings_table
from pydantic import ValidationError

README = Path(__file__).resolve().parents[2] / "proxy" / "README.md"


def test_env_vars_are_read_and_typed(monkeypatch):
    monkeypatch.setenv("SYNTHESIS_MODEL", "openai/local-model")
    monkeypatch.setenv("OPENAI_API_BASE", "http://127.0.0.1:9999/v1")
    monkeypatch.setenv("CHUNK_TOKENS", "256")
    monkeypatch.setenv("PROXY_API_KEYS", "a, b ,")
    monkeypatch.setenv("ALLOW_RAW_DOCUMENT_FALLBACK", "true")
    s = ProxySettings(_env_file=None)
    assert s.synthesis_model == "openai/local-model" and s.synthesis_provider == "openai"
    assert s.synthesis_api_base == "http://127.0.0.1:9999/v1"
    assert s.chunk_tokens == 256 and s.allow_raw_document_fallback is True
    assert s.api_keys == ("a", "b")
    assert "a, b" not in repr(s)  # secrets are masked


@pytest.mark.parametrize(
    ("var", "value"), [("CHUNK_TOKENS", "lots"), ("PROXY_PORT", "70000"), ("CHUNK_OVERLAP_TOKENS", "400")]
)
def test_bad_env_values_fail_with_the_variable_named(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    with pytest.raises(ValidationError, match=var.lower()):
        ProxySettings(_env_file=None)


def test_readme_documents_every_env_var():
    text = README.read_text()
    for env, _, _ in settings_table():
        for name in env.split(" / "):
            assert f"`{name}`" in text, name


def test_env_subcommand_prints_table(capsys):
    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "SYNTHESIS_MODEL" in out and "PROXY_API_KEYS" in out


def test_console_script_serves_on_localhost(tmp_path):
    """`liquid-memory-proxy --port N` (the real entry point, in a subprocess) answers on 127.0.0.1."""
    with httpx.Client() as probe:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {**os.environ, "EXTRACTOR": "bm25", "SYNTHESIS_MODEL": "openai/x", "LOG_LEVEL": "WARNING"}
        code = "import sys; from liquid_memory_proxy.cli import main; sys.exit(main())"
        proc = subprocess.Popen(
            [sys.executable, "-c", code, "--port", str(port)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                try:
                    r = probe.get(f"http://127.0.0.1:{port}/health/liveliness", timeout=1)
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, proc.stdout.read().decode()
                    time.sleep(0.2)
            else:
                pytest.fail("proxy did not start in 90 s")
            assert r.status_code == 200 and r.json() == {"status": "alive"}
        finally:
            proc.terminate()
            proc.wait(timeout=20)


def test_asgi_module_builds_app_from_env(monkeypatch):
    import importlib

    monkeypatch.setenv("SYNTHESIS_MODEL", "openai/from-env")
    monkeypatch.setenv("PROXY_API_KEYS", "k1")
    sys.modules.pop("liquid_memory_proxy.asgi", None)
    module = importlib.import_module("liquid_memory_proxy.asgi")
    try:
        assert module.app.state.settings.synthesis_model == "openai/from-env"
        assert module.app.state.settings.api_keys == ("k1",)
        assert module.app.state.extractor is None  # built in the lifespan, not at import
    finally:
        sys.modules.pop("liquid_memory_proxy.asgi", None)


@pytest.mark.parametrize("sub", ["bench", "overhead"])
def test_the_proxy_cli_runs_no_benchmark(capsys, sub):
    """The proxy's benchmarks run from a checkout (python -m benchmarks proxy-...): here a usage error."""
    with pytest.raises(SystemExit) as exc:
        main([sub])
    assert exc.value.code == 2 and "unrecognized arguments" in capsys.readouterr().err


def test_serve_help_names_the_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "--host" in out and "127.0.0.1" in out and "--port" in out
