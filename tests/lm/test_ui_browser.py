"""``lm ui`` for real: the Gradio server on 127.0.0.1 in its own process, driven by headless Chromium."""

from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import time
import urllib.request

import pytest

from liquid_memory.lm.chat import Generator

from .cdp import HeadlessChromium

SET_INPUTS = """(() => {{
  const set = (selector, value) => {{
    const element = document.querySelector(selector);
    element.value = value;
    element.dispatchEvent(new Event('input', {{bubbles: true}}));
    element.dispatchEvent(new Event('change', {{bubbles: true}}));
  }};
  set('#max-new-tokens input[type=number]', '{tokens}');
  set('#temperature input[type=number]', '0');
  set('#prompt textarea', {prompt});
  return true;
}})()"""
COMPLETION = "document.querySelector('#completion textarea').value"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def ui_server(tiny_run, tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "w")  # noqa: SIM115 - closed below
    command = [sys.executable, "-m", "liquid_memory.cli", "lm", "ui", "--checkpoint", str(tiny_run / "checkpoint.pt"),
               "--backend", "chunked", "--port", str(port)]  # fmt: skip
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 150  # importing gradio on a busy 2-core machine takes a while
        while True:
            assert server.poll() is None, (tmp_path / "server.log").read_text()[-2000:]
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the UI did not come up in 150 s"
            time.sleep(1)
        yield url, port, tmp_path / "server.log"
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def test_web_ui_answers_a_prompt_in_headless_chromium(ui_server, tiny_run, tmp_path):
    url, port, server_log = ui_server
    assert f"Running on local URL:  http://127.0.0.1:{port}\n" in server_log.read_text()  # loopback only
    prompt = "The river"
    expected = "".join(Generator(tiny_run / "checkpoint.pt", backend="chunked").reply(
        prompt, max_new_tokens=10, temperature=0
    ))  # fmt: skip
    assert expected.strip()
    browser = HeadlessChromium(tmp_path / "profile")
    try:
        browser.open(url)
        browser.wait_for("!!document.querySelector('#prompt textarea') && !!document.querySelector('#generate')")
        assert "LiquidLM" in browser.evaluate("document.body.innerText")
        browser.evaluate(SET_INPUTS.format(tokens=10, prompt=json.dumps(prompt)))
        time.sleep(0.5)
        browser.evaluate("document.querySelector('#generate').click()")
        browser.wait_for(f"{COMPLETION} === {json.dumps(expected)}", timeout=90)  # the greedy reply, streamed
        png = browser.screenshot(tmp_path / "ui.png")
        width, height = struct.unpack(">II", png[16:24])
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and width == 1200 and height > 600  # the window's viewport
        assert len(png) > 20_000  # a rendered page, not a blank canvas

        browser.evaluate(SET_INPUTS.format(tokens=10, prompt=json.dumps("word " * 100)))
        time.sleep(0.5)
        browser.evaluate("document.querySelector('#generate').click()")
        browser.wait_for("document.body.innerText.includes('more than the limit of 32')", timeout=60)
    finally:
        browser.close()
