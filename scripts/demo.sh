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
rm -rf "$RUN" runs/tiny-llama  # the demo's own folders: a second run starts afresh instead of refusing to overwrite

step "medtune new-model: a tiny llama, its tokenizer trained on the bundled records, warmed up on them for 300 steps"
$M new-model --arch llama --out runs/tiny-llama --pretrain-steps 300
step "medtune prepare: detect the format, split, audit token lengths"
$M prepare configs/quickstart.yaml
step "medtune train: LoRA on the assistant turns only"
$M train configs/quickstart.yaml
step "medtune eval: 40 bundled MedQA items, tuned vs base, by option log-likelihood"
$M eval --run "$RUN" --task src/medtune/assets/medqa_sample.jsonl --compare-base --out "$RUN/eval"
step "medtune generate: reasoning shown apart from the answer"
$M generate --run "$RUN" --max-tokens 1024 --prompt "$QUESTION"
step "medtune chat: scripted through standard input"
printf '%s\n/quit\n' "What is the most common cause of iron-deficiency anemia?" | $M chat --run "$RUN" --max-tokens 96
step "done: the run directory"
ls "$RUN"
