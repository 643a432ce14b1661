"""The safety screen on its own: refusal and over-refusal per file, and what screening costs per request on CPU.

    python bench/safety_screen.py                      # tests/data/safety/*.jsonl and bench/safety/*.jsonl
    python bench/safety_screen.py FILE ... [--rules-only] [--threads N] [--torch-encoder]

Rows are {"prompt", "label": "safe" | "unsafe"}. Latency is one request at a time (as a server sees them), after a
warm-up, the embedding model (ONNX Runtime, or torch with --torch-encoder) on the given number of threads. The
bundled exemplars hold 180 of the 900 MedSafetyBench training rows (20 per category): the figure for that file
counts the other 720 only.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# the samples in tests/data/safety (45 MedSafetyBench, 50 XSTest, 30 clinical rows); give the full files for the
# figures in bench/README.md
DEFAULT_FILES = [*sorted((ROOT / "tests" / "data" / "safety").glob("*.jsonl")),
                 *sorted((ROOT / "bench" / "safety").glob("*.jsonl"))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", type=Path, default=DEFAULT_FILES)
    parser.add_argument("--rules-only", action="store_true", help="no classifier")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the embedding model")
    parser.add_argument("--exemplars", type=Path, help="more exemplars (safety.exemplars), to try before bundling")
    parser.add_argument("--threshold", type=float, help="safety.threshold (default: the config's)")
    parser.add_argument("--torch-encoder", action="store_true",
                        help="run the classifier's encoder in torch, not ONNX Runtime (to compare their latency)")
    args = parser.parse_args()

    import torch

    from medtune import config as config_mod
    from medtune.safety import load_layer
    from medtune.safety.classifier import BUNDLED

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    overrides = [f"safety.classifier={not args.rules_only}"]
    overrides += [f"safety.exemplars={args.exemplars}"] if args.exemplars else []
    overrides += [f"safety.threshold={args.threshold}"] if args.threshold is not None else []
    layer = load_layer(config_mod.load(None, overrides), embedder=torch_encoder() if args.torch_encoder else None)
    print(f"layer: {', '.join(layer.layers)} (loaded in {time.perf_counter() - started:.1f} s)")
    tuned_on = {json.loads(line)["prompt"] for line in BUNDLED.open(encoding="utf-8")}
    for path in args.files:
        rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
        rows = [r for r in rows if r["prompt"] not in tuned_on]
        report(path, rows, layer)
    return 0


def torch_encoder():
    from medtune.embedder import load_embedder
    from medtune.safety.classifier import MAX_SEQ_LENGTH, TRUNCATION_SIDE

    embedder = load_embedder()
    embedder.max_seq_length, embedder.tokenizer.truncation_side = MAX_SEQ_LENGTH, TRUNCATION_SIDE
    return embedder


def report(path: Path, rows: list[dict], layer) -> None:
    layer.screen_request("warm-up question about fever")
    seconds, refused = [], {"safe": 0, "unsafe": 0}
    for row in rows:
        start = time.perf_counter()
        verdict = layer.screen_request(row["prompt"])
        seconds.append(time.perf_counter() - start)
        refused[row["label"]] += verdict.blocked
    n = {label: sum(r["label"] == label for r in rows) for label in ("safe", "unsafe")}
    parts = []
    if n["unsafe"]:
        parts.append(f"refusal {100 * refused['unsafe'] / n['unsafe']:5.1f}% of {n['unsafe']} unsafe")
    if n["safe"]:
        parts.append(f"over-refusal {100 * refused['safe'] / n['safe']:5.1f}% of {n['safe']} safe")
    ms = sorted(1000 * s for s in seconds)
    print(f"{path.name:32s} {', '.join(parts)}; {statistics.mean(ms):.1f} ms/request mean, "
          f"p95 {ms[int(0.95 * (len(ms) - 1))]:.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
