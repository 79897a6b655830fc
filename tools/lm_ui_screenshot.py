"""Screenshot of ``liquid-memory lm ui`` serving a checkpoint, as README shows it (results/lm/ui_screenshot.png).

Starts the real UI on 127.0.0.1, drives it with headless Chromium (the CDP client of the browser test), asks one
prompt greedily and saves the page. Usage (needs a licence for the liquid mixer's kernels, e.g. the dev key):

    LM_PRIVATE_KEY_FILE=.lm-demo.key .venv/bin/python tools/lm_ui_screenshot.py CHECKPOINT.pt OUT.png \
        --prompt "The most important thing" --tokens 60
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root, for tests.lm.cdp

from tests.lm.cdp import HeadlessChromium  # noqa: E402
from tests.lm.test_ui_browser import COMPLETION, SET_INPUTS, _free_port  # noqa: E402


def _wait_for_server(url: str, server: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the UI exited with code {server.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise SystemExit(f"the UI did not come up in {seconds:.0f} s")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint")
    p.add_argument("out")
    p.add_argument("--prompt", default="The most important thing")
    p.add_argument("--tokens", type=int, default=60)
    args = p.parse_args()
    port = _free_port()
    server = subprocess.Popen([sys.executable, "-m", "liquid_memory.cli", "lm", "ui", "--checkpoint", args.checkpoint,
                               "--port", str(port)])  # fmt: skip
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for_server(url, server)
        with tempfile.TemporaryDirectory() as profile:
            browser = HeadlessChromium(Path(profile))
            try:
                browser.open(url)
                browser.wait_for("!!document.querySelector('#prompt textarea')")
                browser.evaluate(SET_INPUTS.format(tokens=args.tokens, prompt=json.dumps(args.prompt)))
                time.sleep(0.5)
                browser.evaluate("document.querySelector('#generate').click()")
                browser.wait_for(f"{COMPLETION}.length > 0", timeout=120)
                previous, stable_since = None, time.monotonic()
                while time.monotonic() - stable_since < 5:  # streaming: wait until the text stops changing
                    text = browser.evaluate(COMPLETION)
                    if text != previous:
                        previous, stable_since = text, time.monotonic()
                    time.sleep(0.5)
                browser.screenshot(Path(args.out))
                print(f"{args.out}: {previous!r}")
            finally:
                browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
