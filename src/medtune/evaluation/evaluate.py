"""An evaluation run: the tasks, the systems (the model, and the base or another model to compare with, loaded one
at a time), their item records, the judge over every system at once, and the results that report.py writes."""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable
from pathlib import Path

from medtune.config import Config
from medtune.errors import MedtuneError
from medtune.evaluation import judging, stats
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.runner import run_task
from medtune.evaluation.tasks import BUILTIN, load_task
from medtune.rundir import RunDir


def evaluate(cfg: Config, tasks: list, out: Path, adapter: str | None = None, run: str | None = None) -> tuple:
    """(results, records) for `tasks`; the judge and the similarity model are checked before any model loads."""
    open_tasks = {t.name for t in tasks if t.kind == "open"}
    # checked now, before any model loads: a judge that is down or missing stops us at once, not after the run
    make_judge = judging.prepare(cfg) if open_tasks else None
    embedder = _embedder(cfg) if open_tasks else None
    records, systems = [], {}
    for label, load in systems_to_run(cfg, adapter, run):
        systems[label], task_records = evaluate_system(load, tasks, cfg, label, embedder)
        records += task_records
    if make_judge:
        judged = [r for r in records if r["task"] in open_tasks and not r["error"]]  # never ran: nothing to judge
        judging.add_judgments(judged, make_judge(), cfg, out)
    return summarize(cfg, tasks, systems, records), records


def output_dir(cfg: Config, run: str | None) -> Path:
    """eval.out_dir, else <run>/eval, else <output_dir>/eval."""
    if cfg.eval.out_dir:
        return Path(cfg.eval.out_dir)
    return RunDir(run or cfg.output_dir).eval


def load_tasks(cfg: Config) -> list:
    if not cfg.eval.tasks:
        raise MedtuneError(f"no task to evaluate: give --task ({', '.join(BUILTIN)} or a file) or eval.tasks")
    tasks = [load_task(str(t), cfg.eval.data_dir, cfg.eval.limit, hub_split=cfg.eval.hub_split,
                       hub_config=cfg.eval.hub_config, answer_base=cfg.eval.answer_base) for t in cfg.eval.tasks]
    names = [t.name for t in tasks]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise MedtuneError(f"two tasks are both called {twice[0]!r}: rename one of the files")
    return tasks


def systems_to_run(cfg: Config, adapter: str | None, run: str | None) -> list[tuple[str, Callable]]:
    """(label, loader) pairs, loaded one at a time: the tuned (or only) model, then the base to compare with."""
    from medtune.inference import weights
    from medtune.inference.engine import Engine

    source = weights.resolve(cfg, adapter, run)  # checks --run / --adapter before any weights load
    comparing = cfg.eval.compare_base or cfg.eval.compare_model
    main_label = "tuned" if comparing else "model"
    out = [(main_label, lambda: (Engine.load(adapter=adapter, run=run, config=cfg), source))]
    if cfg.eval.compare_base and cfg.eval.compare_model:
        raise MedtuneError("give --compare-base or --compare-model, not both")
    if cfg.eval.compare_base:
        if source.adapter is None and not run:
            raise MedtuneError("--compare-base needs --run or --adapter: the base is the model without the adapter")
        base = cfg if cfg.model.name else source.config
        base_source = weights.resolve(base)
        out.append(("base", lambda: (Engine.load(config=base), base_source)))
    elif cfg.eval.compare_model:
        out.append(("base", lambda: _load_other(cfg, cfg.eval.compare_model)))
    return out


def _load_other(cfg: Config, name: str):
    from medtune.inference import weights
    from medtune.inference.engine import Engine

    if (Path(name) / weights.CONFIG_FILE).is_file():  # a run directory brings its own prompts
        return Engine.load(run=name), weights.resolve(weights.config_beside(run=name), run=name)
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))
    return Engine.load(config=other), weights.resolve(other)


def evaluate_system(load, tasks: list, cfg: Config, label: str, embedder) -> tuple[dict, list[dict]]:
    engine, source = load()
    info = {"model": source.config.model.name, "adapter": str(source.adapter) if source.adapter else None,
            "name": engine.name, "tasks": {}}
    records = []
    for task in tasks:
        task_records, seconds = run_task(engine, task, cfg, label, embedder)
        records += task_records
        info["tasks"][task.name] = {"kind": task.kind, "origin": task.origin, "seconds": round(seconds, 2),
                                    "items_per_s": round(len(task_records) / max(seconds, 1e-9), 3)}
    del engine  # the next system loads into the memory this one held
    gc.collect()
    return info, records


def _embedder(cfg: Config):
    from medtune.evaluation.similarity import load_embedder

    return load_embedder(cfg.eval.similarity_model)


def summarize(cfg: Config, tasks: list, systems: dict, records: list[dict]) -> dict:
    by_key: dict[tuple, list[dict]] = {}
    for r in records:
        by_key.setdefault((r["system"], r["task"]), []).append(r)
    for label, info in systems.items():
        for task in tasks:
            rows = by_key.get((label, task.name), [])
            metrics = stats.mcq_summary(rows) if task.kind == "mcq" else stats.open_summary(rows, CRITERIA)
            info["tasks"][task.name]["metrics"] = metrics
    paired = {}
    if "base" in systems:
        paired = {t.name: stats.paired_summary(by_key.get(("base", t.name), []), by_key.get(("tuned", t.name), []),
                                               cfg.seed, CRITERIA) for t in tasks}
    judge = {"url": cfg.eval.judge_url, "model": cfg.eval.judge_model} if cfg.eval.judge_url or cfg.eval.judge_model \
        else None
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "medtune": _version(), "mode": cfg.eval.mode,
            "mcq_format": cfg.eval.mcq_format, "seed": cfg.seed, "judge": judge, "config": cfg.to_dict(),
            "systems": systems, "paired": paired}


def _version() -> str:
    from medtune import __version__

    return __version__


