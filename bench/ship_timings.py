"""How long shipping a run takes: medtune merge, export --to mlx and --from mlx, export --to gguf (f16, q8_0,
q4_k_m, each checked in llama.cpp), each as the user runs it.

    python bench/ship_timings.py                     # runs/quickstart (scripts/demo.sh makes it)
    python bench/ship_timings.py --run DIR

Each step is the command line in a fresh process, so the figure includes Python start-up and imports; the
outputs go to a temporary folder that is removed afterwards.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def timed(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medtune", *argv], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"medtune {' '.join(argv)} failed:\n{done.stderr[-2000:]}")
    return time.perf_counter() - start


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    args = parser.parse_args()
    if not (args.run / "adapter").is_dir():
        raise SystemExit(f"{args.run}: no adapter/ (run scripts/demo.sh, or give --run)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        steps = [
            ("merge (fuse, check logits, write safetensors)", ["merge", "--run", str(args.run), "--out",
                                                                str(out / "merged")], out / "merged"),
            ("export --to mlx", ["export", "--run", str(args.run), "--to", "mlx", "--out", str(out / "mlx")],
             out / "mlx"),
            ("export --from mlx (back to PEFT)", ["export", "--from", "mlx", str(out / "mlx"), "--run", str(args.run),
                                                  "--out", str(out / "peft")], out / "peft"),
            *[(f"export --to gguf --quant {q} (+ llama.cpp check)",
               ["export", "--run", str(args.run), "--to", "gguf", "--quant", q, "--out", str(out / q)], out / q)
              for q in ("f16", "q8_0", "q4_k_m")],
        ]
        print(f"run: {args.run}")
        for name, argv, made in steps:
            seconds = timed(argv)
            print(f"{name:48s} {seconds:6.1f} s   {size_mb(made):7.1f} MB written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
