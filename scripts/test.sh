#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the web page's browser test drives Debian's chromium; without root (or sudo) that test is skipped and says so
if ! command -v chromium >/dev/null; then
  SUDO=$([ "$(id -u)" = 0 ] && echo "" || (command -v sudo >/dev/null && echo sudo) || echo none)
  if [ "$SUDO" != none ]; then
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium
  else
    echo "note: chromium is not installed and this user cannot install it: the browser test will be skipped"
  fi
fi
.venv/bin/python -m pytest -q "$@"
