"""The safety screen on its own: refusal and over-refusal per file, and what screening costs per request on CPU.

    python bench/safety_screen.py                      # tests/data/safety/*.jsonl, bench/safety/*.jsonl, heldout/
    python bench/safety_screen.py FILE ... [--rules-only] [--threads N] [--torch-encoder] [--no-multilingual]

Rows are {"prompt" or "messages", "label": "safe" | "unsafe"}: a conversation is judged on its last user turn in
the light of the turns before it, as serve and chat screen it. Rows with a "language" or an "attack" field are
also counted per language and per attack (obfuscation, framing, conversation), each with its Wilson 95% interval.
Rows marked "emergency": true are safe: answered with the emergency advice first counts as answered, not refused.
Latency is one request at a time (as a server sees them), after a warm-up, on the given number of threads; p50 and
p95 per file. The bundled exemplars hold 180 of the 900 MedSafetyBench training rows (20 per category): the figure
for that file counts the other 720 only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the samples in tests/data/safety (45 MedSafetyBench, 50 XSTest, 30 clinical rows); give the full files for the
# figures in bench/README.md
DEFAULT_FILES = [*sorted((ROOT / "tests" / "data" / "safety").glob("*.jsonl")),
                 *sorted((ROOT / "bench" / "safety").glob("*.jsonl")),
                 *sorted((ROOT / "bench" / "safety" / "heldout").glob("*.jsonl"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--rules-only", action="store_true", help="no classifier")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the embedding model")
    parser.add_argument("--exemplars", type=Path, help="more exemplars (safety.exemplars), to try before bundling")
    parser.add_argument("--threshold", type=float, help="safety.threshold (default: the config's)")
    parser.add_argument("--no-multilingual", action="store_true",
                        help="safety.multilingual: false (the English encoder alone), to compare")
    parser.add_argument("--torch-encoder", action="store_true",
                        help="run the classifier's encoder in torch, not ONNX Runtime (to compare their latency)")
    args = parser.parse_args()

    import torch

    from medtune import config as config_mod
    from medtune.safety import load_layer
    from medtune.safety.classifier import BUNDLED

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    overrides = [f"safety.classifier={not args.rules_only}", f"safety.multilingual={not args.no_multilingual}"]
    overrides += [f"safety.exemplars={args.exemplars}"] if args.exemplars else []
    overrides += [f"safety.threshold={args.threshold}"] if args.threshold is not None else []
    layer = load_layer(config_mod.load(None, overrides), embedder=torch_encoder() if args.torch_encoder else None)
    print(f"layer: {', '.join(layer.layers)} (loaded in {time.perf_counter() - started:.1f} s)")
    tuned_on = {json.loads(line)["prompt"] for line in BUNDLED.open(encoding="utf-8")}
    for path in args.files:
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        rows = [r for r in rows if r.get("prompt") not in tuned_on]
        report(path, rows, layer)
    return 0


def torch_encoder():
    from medtune.embedder import load_embedder
    from medtune.safety.classifier import MAX_SEQ_LENGTH, TRUNCATION_SIDE

    embedder = load_embedder()
    embedder.max_seq_length, embedder.tokenizer.truncation_side = MAX_SEQ_LENGTH, TRUNCATION_SIDE
    return embedder


def report(path: Path, rows: list[dict], layer) -> None:
    """One line for the file, then one per language and per attack where the rows name them."""
    layer.screen_request("warm-up question about fever")
    seconds, refused = [], []
    for row in rows:
        if "messages" in row:  # the earlier turns were screened when they were asked, as serve and chat do
            layer.screen_request(row["messages"][:-2] or row["messages"][:1])
        start = time.perf_counter()
        verdict = layer.screen_request(row["messages"] if "messages" in row else row["prompt"])
        seconds.append(time.perf_counter() - start)
        refused.append(verdict.blocked)
    ms = sorted(1000 * s for s in seconds)
    print(f"{path.name:32s} {rates(rows, refused)}; p50 {ms[len(ms) // 2]:.1f} ms, "
          f"p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms")
    for key in ("language", "attack"):
        groups = sorted({r[key] for r in rows if r.get(key)})
        if len(groups) > 1:
            for group in groups:
                picked = [i for i, r in enumerate(rows) if r.get(key) == group]
                print(f"  {key} {group:22s} {rates([rows[i] for i in picked], [refused[i] for i in picked])}")


def rates(rows: list[dict], refused: list[bool]) -> str:
    """Refusal of the unsafe rows and over-refusal of the safe ones, each with its Wilson 95% interval."""
    from medtune.evaluation.stats import wilson_interval

    parts = []
    for label, what in (("unsafe", "refusal"), ("safe", "over-refusal")):
        flags = [r for row, r in zip(rows, refused) if row["label"] == label]
        if flags:
            lo, hi = wilson_interval(sum(flags), len(flags))
            parts.append(f"{what} {100 * sum(flags) / len(flags):5.1f}% [{100 * lo:4.1f}, {100 * hi:5.1f}] "
                         f"of {len(flags):3d} {label}")
    return ", ".join(parts)


if __name__ == "__main__":
    sys.exit(main())
