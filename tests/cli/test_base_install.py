"""The customer CLI on a base install — the wheel's own dependencies and nothing else: ``verify``, ``license`` and
``bench`` work, and the commands of an optional extra say which extra to install (typed ``LM901``, exit code != 0,
no traceback).

Each case runs the real console script (``.venv/bin/liquid-memory``) in a fresh ``python -S`` whose only
site-packages is a folder of links to the distributions ``liquid-memory``'s base requirements pull in (their
closure, computed from the installed metadata): every optional module is then as absent as on a base install —
``importlib.util.find_spec`` finds nothing, which the runner checks before it starts.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from tests.base_env import link_site
from tests.dev_licence import dev_licence

REPO = Path(__file__).resolve().parents[2]
OPTIONAL = ["tokenizers", "transformers", "matplotlib", "peft", "gradio", "safetensors", "gguf", "fastapi", "pytest"]
RUNNER = r"""
import importlib.util, runpy, sys
present = [m for m in sys.argv[2].split(",") if importlib.util.find_spec(m) is not None]
if present:
    sys.exit(f"not a base environment: {present} importable")
script = sys.argv[1]
sys.argv = ["liquid-memory", *sys.argv[3:]]
runpy.run_path(script, run_name="__main__")
"""


@pytest.fixture(scope="module")
def base_site(tmp_path_factory) -> Path:
    """A site-packages folder holding links to the base closure's files only (liquid_memory itself: src/)."""
    site = link_site(tmp_path_factory.mktemp("base-site"), metadata.requires("liquid-memory") or [])
    assert (site / "torch").is_dir() and not (site / "matplotlib").exists()
    return site


def liquid_memory(base_site: Path, *argv: str, licence: bool = False) -> subprocess.CompletedProcess:
    script = shutil.which("liquid-memory", path=str(Path(sys.executable).parent))
    assert script, "the liquid-memory console script is installed with the package"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LM_", "PYTHON"))}
    env.update(PYTHONPATH=os.pathsep.join([str(base_site), str(REPO / "src")]), OMP_NUM_THREADS="1")
    if licence:
        env["LM_PRIVATE_KEY"] = dev_licence()
    command = [sys.executable, "-S", "-c", RUNNER, script, ",".join(OPTIONAL), *argv]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600, cwd=REPO)
    assert "not a base environment" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr[-3000:]
    return result


def test_verify_runs_on_a_base_install(base_site):
    result = liquid_memory(base_site, "verify")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("OK ")


def test_license_runs_on_a_base_install(base_site):
    result = liquid_memory(base_site, "license", "--json", licence=True)
    assert result.returncode == 0, result.stderr
    claims = json.loads(result.stdout)
    assert claims["valid"] and "kernel" in claims["features"]
    missing = liquid_memory(base_site, "license")
    assert missing.returncode == 1 and "LM101" in missing.stderr


def test_bench_runs_on_a_base_install_without_the_plot(base_site, tmp_path):
    argv = ["bench", "--embed-dim", "32", "--heads", "2", "--seq-lens", "64,128", "--time-budget", "5",
            "--out-dir", str(tmp_path)]  # fmt: skip
    result = liquid_memory(base_site, *argv, licence=True)
    assert result.returncode == 0, result.stderr
    assert "no PNG" in result.stdout and "liquid-memory[bench]" in result.stdout
    (written,) = tmp_path.glob("layer_*.json")
    assert [row["seq_len"] for row in json.loads(written.read_text())["rows"]] == [64, 128]
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("argv", "extra", "exit_code"),
    [
        (["lm", "train", "--steps", "1"], "lm", 2),  # lm chat / ui / --help stop at the same point: its parser
        (["linearize", "--out", "unused"], "hf", 1),
    ],
    ids=["lm-train", "linearize"],
)
def test_extra_commands_name_the_extra_to_install(base_site, argv, extra, exit_code):
    result = liquid_memory(base_site, *argv)
    assert result.returncode == exit_code, result.stderr
    assert "LM901" in result.stderr and f"pip install 'liquid-memory[{extra}]'" in result.stderr


def test_the_command_list_needs_no_extra(base_site):
    result = liquid_memory(base_site, "--help")
    assert result.returncode == 0
    for command in ("bench", "verify", "license", "lm", "linearize"):
        assert command in result.stdout
