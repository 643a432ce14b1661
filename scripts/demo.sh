#!/usr/bin/env bash
# Set up, then the whole flow on a tiny model made locally and the bundled sample data, offline, on CPU:
# new-model -> prepare -> train -> eval (tuned vs base) -> generate -> chat.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
M=.venv/bin/medtune
RUN=runs/quickstart
QUESTION="A 45-year-old man has crushing chest pain radiating to the left arm. What is the first step in management?"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "medtune new-model: a random tiny llama with a tokenizer trained on the bundled text"
$M new-model --arch llama --out runs/tiny-llama
step "medtune prepare: detect the format, split, audit token lengths"
$M prepare configs/quickstart.yaml
step "medtune train: LoRA on the assistant turns only"
$M train configs/quickstart.yaml
step "medtune eval: 40 bundled MedQA items, tuned vs base, by option log-likelihood"
$M eval --run "$RUN" --task src/medtune/assets/medqa_sample.jsonl --compare-base --out "$RUN/eval"
step "medtune generate: reasoning shown apart from the answer"
$M generate --run "$RUN" --max-tokens 48 --prompt "$QUESTION"
step "medtune chat: scripted through standard input"
printf '%s\n/quit\n' "$QUESTION" | $M chat --run "$RUN" --max-tokens 32
step "done: the run directory"
ls "$RUN"
