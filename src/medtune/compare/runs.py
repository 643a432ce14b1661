"""The inputs of a comparison: run directories (config.yaml, run.json, metrics.jsonl, eval/) or model names, each
with a short unique label, and what training measured for each run."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from statistics import median

from medtune.errors import MedtuneError
from medtune.rundir import RunDir, read_metrics


@dataclass(frozen=True)
class Input:
    label: str  # unique, short: the run folder's name or the model's last path part
    given: str  # as written on the command line
    run: RunDir | None  # None: a model name (hub id, folder, .gguf, built-in), nothing trained here

    @property
    def is_run(self) -> bool:
        return self.run is not None


def read_inputs(given: list[str]) -> list[Input]:
    if len(given) < 2:
        raise MedtuneError("compare needs at least two runs or models (run directories, hub ids, folders)")
    twice = sorted({g for g in given if given.count(g) > 1})
    if twice:
        raise MedtuneError(f"{twice[0]} is given twice: each input is compared once")
    labels = unique_labels([_short_name(g) for g in given])
    return [Input(label, g, RunDir(g) if RunDir(g).is_run() else None) for label, g in zip(labels, given)]


def _short_name(given: str) -> str:
    return Path(given.rstrip("/")).name or given


def unique_labels(names: list[str]) -> list[str]:
    """Names as they are, with -2, -3 ... after the second and later of a repeated one."""
    seen: Counter = Counter()
    out = []
    for name in names:
        seen[name] += 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def training(inp: Input) -> dict:
    """What a run's run.json and metrics.jsonl say about its training; {} for a model name."""
    if not inp.is_run:
        return {}
    info, rows = inp.run.info(), read_metrics(inp.run.metrics)
    speeds = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    peaks = [r["peak_mem_mb"] for r in rows if r.get("peak_mem_mb") is not None]
    return {"model": info.get("model"), "total_params": info.get("total_params"), "method": info.get("method"),
            "trainable_params": info.get("trainable_params"), "steps": info.get("global_step"),
            "wall_s": info.get("wall_s"),
            # the median of the logged windows: the first window carries start-up (compilation, warm-up)
            "tokens_per_s": median(speeds) if speeds else None,
            "peak_mem_mb": info.get("peak_mem_mb") or (max(peaks) if peaks else None),
            "final_train_loss": info.get("final_train_loss", _last(rows, "train_loss")),
            "final_val_loss": info.get("final_val_loss", _last(rows, "val_loss"))}


def _last(rows: list[dict], key: str):
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def loss_curves(inp: Input) -> dict:
    """{"train": [(step, loss)], "val": [(step, loss)]} from metrics.jsonl; empty lists for a model name."""
    rows = read_metrics(inp.run.metrics) if inp.is_run else []
    return {key: [(r["step"], r[f"{key}_loss"]) for r in rows if r.get(f"{key}_loss") is not None]
            for key in ("train", "val")}
