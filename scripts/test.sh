#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# the GGUF tests run the exported files in llama.cpp: llama-cpp-python compiles it (about 5 minutes on 2 cores,
# once: the wheel is kept in ~/.cache/medtune/wheels). On x86-64 it is built for AVX2, not -march=native: a native
# build uses AMX where the CPU reports it, and that matmul crashed (SIGSEGV) on the virtual machines CI runs on.
LLAMA_CPP=llama-cpp-python==0.3.36
case "$(uname -m)" in
  x86_64) FLAGS="-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON"; KIND=avx2 ;;
  *) FLAGS=""; KIND=native ;;
esac
WHEELS="$HOME/.cache/medtune/wheels/${LLAMA_CPP/==/-}-$KIND"
if ! .venv/bin/python -c "import sys, llama_cpp; sys.exit('AMX' in llama_cpp.llama_print_system_info().decode())" \
    >/dev/null 2>&1; then
  if ! ls "$WHEELS"/*.whl >/dev/null 2>&1; then
    rm -rf "$WHEELS.partial"
    CMAKE_ARGS="$FLAGS" .venv/bin/python -m pip wheel -q --no-deps --no-cache-dir --no-binary llama-cpp-python \
      -w "$WHEELS.partial" "$LLAMA_CPP"
    mv "$WHEELS.partial" "$WHEELS"
  fi
  .venv/bin/python -m pip install -q --force-reinstall --no-deps "$WHEELS"/*.whl
fi
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
# lint first: a style error fails CI as a test would (the rules are in pyproject.toml, [tool.ruff])
.venv/bin/ruff check src tests bench
.venv/bin/python -m pytest -q "$@"
