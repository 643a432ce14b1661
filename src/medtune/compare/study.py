"""The whole comparison: read the inputs, settle one set of evaluation settings, reuse or run each input's
evaluation, summarise each input per task, pair every two inputs, derive the findings, write the outputs."""

from __future__ import annotations

import time
from collections.abc import Callable
from itertools import combinations
from pathlib import Path

from medtune.compare import evals, findings, pairs, plots, report, runs
from medtune.config import Config


def compare(given: list[str], flags: dict, out: Path, note: Callable[[str], None] = lambda _: None,
            engine_cls=None, config: str | None = None, overrides: list[str] = ()) -> tuple:
    """(results, written paths) of comparing `given` (run directories or model names). The evaluation settings
    are the same for all: `config`'s (else the first run's), then the key=value `overrides` (set on every input's
    config), then `flags` ({"eval.tasks": [...], "eval.limit": 50, ...}); engine_cls loads the models evaluated
    here (default Engine)."""
    from medtune.evaluation.evaluate import load_tasks

    inputs = runs.read_inputs(given)
    reference = evals.reference(inputs, config)
    shared = evals.shared_settings(reference, flags, overrides, evals.shared_keys(config is not None))
    # every config is read and checked here, before any model loads
    configs = {i.label: evals.input_config(i, shared, reference, overrides) for i in inputs}
    tasks = load_tasks(configs[inputs[0].label])
    done = {i.label: evals.evaluation_of(i, configs[i.label], tasks, out / "evals" / i.label, note, engine_cls)
            for i in inputs}
    results = assemble(inputs, configs, tasks, done)
    curves = {i.label: runs.loss_curves(i) for i in inputs}
    written = report.write_outputs(out, results, plots.write_plots(out / "plots", results, curves))
    return results, written


def assemble(inputs: list, configs: dict[str, Config], tasks: list, done: dict) -> dict:
    first = configs[inputs[0].label]
    systems = {label: {t.name: evals.task_figures(t, [r for r in e.records if r.task == t.name], e.seconds[t.name])
                       for t in tasks} for label, e in done.items()}
    paired = findings.adjust(pairs.all_pairs({label: e.records for label, e in done.items()}, tasks, first.seed))
    described = {i.label: describe(i, configs[i.label], done[i.label]) for i in inputs}
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "medtune": _version(), "seed": first.seed,
            "mode": first.eval.mode, "tasks": {t.name: {"kind": t.kind, "items": len(t.examples())} for t in tasks},
            "inputs": described, "systems": systems, "paired": paired,
            "findings": {"significant": findings.findings(paired), "no_difference": findings.no_difference_line(paired),
                         "measurements": measurements(described, systems, done)}}


def describe(inp: runs.Input, cfg: Config, evaluation: evals.Evaluation) -> dict:
    trained = runs.training(inp)
    if trained and not trained.get("model"):
        trained["model"] = cfg.model.name  # a run without run.json: its config names the base
    return {"given": inp.given, "run": str(inp.run.root) if inp.is_run else None,
            "model": trained.get("model") or cfg.model.name, "evaluation": evaluation.source,
            "evaluation_reused": evaluation.reused, "load_s": evaluation.load_s, "warm_up_s": evaluation.warm_up_s,
            "engine": evaluation.engine, "training": trained}


def measurements(described: dict, systems: dict, done: dict) -> list[str]:
    """Training ratios of every two runs, then generation-speed ratios of every two inputs per task."""
    out = []
    for a, b in combinations(described, 2):
        out += findings.training_measurements(a, described[a]["training"], b, described[b]["training"])
    for a, b in combinations(systems, 2):
        side_by_side = not (done[a].reused or done[b].reused)
        out += [findings.generation_measurement(task, a, systems[a][task].speed, b, systems[b][task].speed,
                                                side_by_side) for task in systems[a] if task in systems[b]]
    return [s for s in out if s]


def _version() -> str:
    from medtune import __version__

    return __version__
