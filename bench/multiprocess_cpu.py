"""One process vs two on this machine's CPU, the same optimizer steps: `medtune train` with accumulation 2 against
`medtune train --nproc 2` with accumulation 1 (each process one thread, as torchrun sets it).

    python bench/multiprocess_cpu.py               # the 2.9M-parameter `small` model, 24 steps of 4 sequences
    python bench/multiprocess_cpu.py --steps 48 --data FILE   # medical-o1 records (default: tests/data)

Prints wall time (process start to exit, so imports and start-up of every rank count), the median tokens/s of
the logged steps, and the largest difference between the two loss curves. On a 2-core machine two processes
can at best double the one-thread speed; they also pay gloo's all-reduce of the adapter gradients every step.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "medical_o1_sample.jsonl"


def run(model: Path, out: Path, steps: int, data: Path, extra: list[str]) -> float:
    values = [f"model.name={model}", f"output_dir={out}", f"data.train_file={data}", "data.limit=80",
              "model.max_length=256", "data.overlong=truncate", "training.batch_size=2", f"training.max_steps={steps}",
              "training.logging_steps=1", "training.save_steps=1000", "lora.dropout=0.0", "seed=3"]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medtune", "train", *values, *extra], capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"training failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def curve(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--data", type=Path, default=DATA, help="medical-o1 records (default: %(default)s)")
    args = parser.parse_args()
    from medtune.models.tiny import build_tiny_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = build_tiny_model("llama", tmp / "model", size="small")
        one = run(model, tmp / "one", args.steps, args.data, ["training.gradient_accumulation_steps=2"])
        two = run(model, tmp / "two", args.steps, args.data, ["training.gradient_accumulation_steps=1", "--nproc", "2"])
        a, b = curve(tmp / "one"), curve(tmp / "two")
        diff = max(abs(x["train_loss"] - y["train_loss"]) for x, y in zip(a, b) if "train_loss" in x)
        for name, seconds, rows in (("1 process, accumulation 2", one, a), ("2 processes, accumulation 1", two, b)):
            speed = statistics.median(r["tokens_per_s"] for r in rows if "tokens_per_s" in r)
            print(f"{name:30s} {seconds:6.1f} s wall   {speed:8,.0f} tok/s (median step)   "
                  f"final loss {rows[-1]['train_loss']:.4f}")
        print(f"largest train-loss difference between the curves: {diff:.1e} over {args.steps} steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
