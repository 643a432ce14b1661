"""Base versus tuned on a real model (default: the built-in SmolLM2-135M-Instruct and configs/quickstart.yaml),
through the same command lines a user runs:

  train     medtune train CONFIG                          (skipped with --run DIR: an existing run)
  held-out  medtune eval --run RUN --task HELD_OUT --compare-base   (default: the 10 bundled held-out questions)
            (format compliance: reasoning present and closed, then a non-empty answer; answer similarity)
  MedQA     medtune eval --run RUN --task medqa --data-dir DIR --limit N --compare-base
            (DIR: --data-dir, default tests/data/eval, whose medqa.jsonl holds the first 60 test items)
            (log-likelihood, as lm-eval scores it; near chance for a 135M model)

Prints one table: validation loss before and after training, format compliance, similarity, MedQA accuracy with
its interval, training tokens/s and peak memory, generation tokens/s. Figures, not a test.

Run: .venv/bin/python bench/real_model.py [--config configs/quickstart.yaml] [--run DIR] [--task FILE] [--medqa 200]
     [--data-dir DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EVAL_DIR = ROOT / "tests" / "data" / "eval"
HELD_OUT = ROOT / "src" / "medtune" / "assets" / "medical_o1_heldout.jsonl"


def medtune(*argv) -> float:
    """Run one medtune command (its output shown), return its wall seconds; stop the bench if it fails."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "medtune", *map(str, argv)], cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"medtune {argv[0]} failed with exit code {done.returncode}")
    return time.perf_counter() - start


def read_results(folder: Path) -> dict:
    return json.loads((folder / "results.json").read_text())


def generation_speed(folder: Path, system: str, task: str) -> float:
    """Generated tokens per second of the task's wall time for one system (batched generation, prompts included)."""
    items = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    tokens = sum(r.get("generated_tokens") or 0 for r in items if r["system"] == system and r["task"] == task)
    seconds = read_results(folder)["systems"][system]["tasks"][task]["seconds"]
    return tokens / seconds if seconds else 0.0


def training_figures(run: Path) -> dict:
    info = json.loads((run / "run.json").read_text())
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    speeds = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {"start_val_loss": info.get("start_val_loss"), "final_val_loss": info.get("final_val_loss"),
            "train_wall_s": info.get("wall_s"), "train_tokens_per_s": sum(speeds) / len(speeds) if speeds else None,
            "train_peak_mb": info.get("peak_mem_mb"), "model": info.get("model"), "steps": info.get("global_step")}


def table(fig: dict, held: dict, medqa: dict | None, task: str) -> list[str]:
    def metric(system, name):
        return held["systems"][system]["tasks"][task]["metrics"].get(name)

    rows = [("validation loss", fig["start_val_loss"], fig["final_val_loss"]),
            ("format compliance (held-out)", metric("base", "format_compliance"), metric("tuned", "format_compliance")),
            ("answer similarity (mean)", (metric("base", "similarity") or {}).get("mean"),
             (metric("tuned", "similarity") or {}).get("mean")),
            ("generation tokens/s", fig["gen_base"], fig["gen_tuned"])]
    if medqa:
        m = {s: medqa["systems"][s]["tasks"]["medqa"]["metrics"] for s in ("base", "tuned")}
        rows.append(("MedQA accuracy (loglik)", m["base"]["accuracy"], m["tuned"]["accuracy"]))
    lines = ["| figure | base | tuned |", "|---|---:|---:|"]
    lines += [f"| {name} | {_fmt(b)} | {_fmt(t)} |" for name, b, t in rows]
    lines.append(f"\ntraining: {fig['steps']} steps in {fig['train_wall_s']} s, {_fmt(fig['train_tokens_per_s'])} "
                 f"tokens/s, peak {_fmt(fig['train_peak_mb'])} MB")
    return lines


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) and value < 10 else f"{value:,.1f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/quickstart.yaml")
    p.add_argument("--run", help="an existing run directory (skip training)")
    p.add_argument("--task", default=str(HELD_OUT), help="open-ended held-out questions with reference answers")
    p.add_argument("--max-tokens", type=int, default=768, help="generation budget per held-out question")
    p.add_argument("--medqa", type=int, default=200, help="MedQA items scored by log-likelihood (0: skip)")
    p.add_argument("--data-dir", default=str(EVAL_DIR), help="folder holding medqa.jsonl (default: %(default)s, "
                                                             "60 items; the full test set has 1,273)")
    p.add_argument("--json", help="also write the figures here")
    a = p.parse_args()
    run = Path(a.run) if a.run else None
    if run is None:
        import yaml

        run = ROOT / yaml.safe_load((ROOT / a.config).read_text())["output_dir"]
        medtune("train", a.config)
    held_out = run / "bench_heldout"
    medtune("eval", "--run", run, "--task", a.task, "--compare-base", "--max-tokens", a.max_tokens, "--out", held_out)
    held = read_results(held_out)
    medqa = None
    if a.medqa:
        medtune("eval", "--run", run, "--task", "medqa", "--data-dir", a.data_dir, "--limit", a.medqa,
                "--compare-base", "--out", run / "bench_medqa")
        medqa = read_results(run / "bench_medqa")
    fig = training_figures(run)
    task = next(iter(held["systems"]["tuned"]["tasks"]))
    fig["gen_base"], fig["gen_tuned"] = (generation_speed(held_out, s, task) for s in ("base", "tuned"))
    lines = table(fig, held, medqa, task)
    print("\n".join(lines))
    if a.json:
        Path(a.json).write_text(json.dumps({"figures": fig, "held_out": held["systems"], "medqa": medqa and
                                            medqa["systems"]}, indent=2, default=str))


if __name__ == "__main__":
    main()
