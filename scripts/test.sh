#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the GGUF tests run the exported files in llama.cpp: llama-cpp-python compiles it (about 6 minutes on 2 cores,
# once: pip keeps the built wheel)
.venv/bin/python -m pip install -q -e ".[gguf]"
# Debian packages the tests drive: chromium (the web page's browser test) and go (Ollama's template engine, for
# the Modelfile test); without root (or sudo) those tests are skipped and say so
MISSING=""
command -v chromium >/dev/null || MISSING="$MISSING chromium"
command -v go >/dev/null || MISSING="$MISSING golang-go"
if [ -n "$MISSING" ]; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || (command -v sudo >/dev/null && echo sudo) || echo none)
  if [ "$SUDO" != none ]; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq $MISSING
  else
    echo "note:$MISSING not installed and this user cannot install them: the tests that need them will be skipped"
  fi
fi
.venv/bin/python -m pytest -q "$@"
