"""An evaluation run: the tasks, the systems (the model, and the base or another model to compare with, loaded one
at a time), their item records, the judge over every system at once, and the results that report.py writes.
Every system that generates is loaded with the config's safety layer (generate, chat and serve have it too);
screen mode runs the layer alone on safety tasks and loads no model."""

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
from medtune.evaluation.runner import run_task, screen_task, warm_up
from medtune.evaluation.tasks import BUILTIN, load_task
from medtune.rundir import RunDir


def evaluate(cfg: Config, tasks: list, out: Path, adapter: str | None = None, run: str | None = None,
             engine_cls=None) -> tuple:
    """(results, records) for `tasks`; the judge and the similarity model are checked before any model loads.
    engine_cls: what loads each system (Engine, the default, or VllmEngine: the same load arguments)."""
    if cfg.eval.mode == "screen":
        return screen(cfg, tasks)
    open_tasks = {t.name for t in tasks if t.kind == "open"}
    # checked now, before any model loads: a judge that is down or missing stops us at once, not after the run
    make_judge = judging.prepare(cfg) if open_tasks else None
    embedder = _embedder(cfg) if open_tasks else None
    records, systems = [], {}
    for label, load in systems_to_run(cfg, adapter, run, _layer(cfg, tasks), engine_cls):
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


def screen(cfg: Config, tasks: list) -> tuple:
    """Screen mode: the safety layer alone on safety tasks, one request at a time as `serve` screens them."""
    from medtune.safety import load_layer

    others = [t for t in tasks if t.kind != "safety"]
    if others:
        raise MedtuneError(f"screen mode measures the safety layer on safety files ({{prompt, label: safe|unsafe}} "
                           f"rows); {others[0].name} is a {others[0].kind} task: use --mode loglik or generate")
    if cfg.eval.compare_base or cfg.eval.compare_model:
        raise MedtuneError("screen mode loads no model, so there is nothing to compare: drop --compare-base and "
                           "--compare-model, or use --mode generate")
    if not cfg.safety.enabled:
        raise MedtuneError("screen mode measures the safety layer: it is switched off (safety.enabled: false)")
    layer = load_layer(cfg)
    info = {"model": None, "adapter": None, "name": f"safety layer ({' + '.join(layer.layers)})",
            "layers": layer.layers, "threshold": cfg.safety.threshold if layer.classifier is not None else None,
            "tasks": {}}
    records = []
    for task in tasks:
        task_records, seconds = screen_task(layer, task, "layer")
        records += task_records
        info["tasks"][task.name] = _task_info(task, task_records, seconds)
    return summarize(cfg, tasks, {"layer": info}, records), records


def systems_to_run(cfg: Config, adapter: str | None, run: str | None, layer=None,
                   engine_cls=None) -> list[tuple[str, Callable]]:
    """(label, loader) pairs, loaded one at a time: the tuned (or only) model, then the base to compare with;
    every engine gets `layer` (the safety layer, or None)."""
    from medtune.inference import weights
    from medtune.inference.engine import Engine

    engine_cls = engine_cls or Engine
    source = weights.resolve(cfg, adapter, run)  # checks --run / --adapter before any weights load
    comparing = cfg.eval.compare_base or cfg.eval.compare_model
    main_label = "tuned" if comparing else "model"
    out = [(main_label, lambda: (engine_cls.load(adapter=adapter, run=run, config=cfg, safety=layer), source))]
    if cfg.eval.compare_base and cfg.eval.compare_model:
        raise MedtuneError("give --compare-base or --compare-model, not both")
    if cfg.eval.compare_base:
        if source.adapter is None and not run:
            raise MedtuneError("--compare-base needs --run or --adapter: the base is the model without the adapter")
        base = cfg if cfg.model.name else source.config
        base_source = weights.resolve(base)
        out.append(("base", lambda: (engine_cls.load(config=base, safety=layer), base_source)))
    elif cfg.eval.compare_model:
        out.append(("base", lambda: _load_other(cfg, cfg.eval.compare_model, layer, engine_cls)))
    return out


def _load_other(cfg: Config, name: str, layer, engine_cls):
    from medtune.inference import weights

    if (Path(name) / weights.CONFIG_FILE).is_file():  # a run directory brings its own prompts
        return engine_cls.load(run=name, safety=layer), weights.resolve(weights.config_beside(run=name), run=name)
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))
    return engine_cls.load(config=other, safety=layer), weights.resolve(other)


def _layer(cfg: Config, tasks: list):
    """The safety layer, for runs that generate: log-likelihood scoring writes no answer to screen."""
    if cfg.eval.mode == "loglik" and all(t.kind == "mcq" for t in tasks):
        return None
    from medtune.safety import load_layer

    return load_layer(cfg)


def evaluate_system(load, tasks: list, cfg: Config, label: str, embedder) -> tuple[dict, list[dict]]:
    """One system on every task; its load and its warm-up are timed apart from the tasks (load_s, warm_up_s), so
    the system evaluated first does not pay the process's one-time start-up inside its first task."""
    started = time.perf_counter()
    engine, source = load()
    loaded = time.perf_counter()
    warm_up(engine)
    info = {"model": source.config.model.name, "adapter": str(source.adapter) if source.adapter else None,
            "name": engine.name, "load_s": round(loaded - started, 3),
            "warm_up_s": round(time.perf_counter() - loaded, 3), "tasks": {}}
    records = []
    for task in tasks:
        task_records, seconds = run_task(engine, task, cfg, label, embedder)
        records += task_records
        info["tasks"][task.name] = _task_info(task, task_records, seconds)
    del engine  # the next system loads into the memory this one held
    gc.collect()
    return info, records


def _task_info(task, records: list[dict], seconds: float) -> dict:
    return {"kind": task.kind, "origin": task.origin, "seconds": round(seconds, 2),
            "items_per_s": round(len(records) / max(seconds, 1e-9), 3)}


def _embedder(cfg: Config):
    from medtune.evaluation.similarity import load_embedder

    return load_embedder(cfg.eval.similarity_model)


def summarize(cfg: Config, tasks: list, systems: dict, records: list[dict]) -> dict:
    by_key: dict[tuple, list[dict]] = {}
    for r in records:
        by_key.setdefault((r["system"], r["task"]), []).append(r)
    for label, info in systems.items():
        for task in tasks:
            info["tasks"][task.name]["metrics"] = _metrics(task, by_key.get((label, task.name), []), cfg)
    paired = {}
    if "base" in systems:
        paired = {t.name: _paired(t, by_key.get(("base", t.name), []), by_key.get(("tuned", t.name), []), cfg)
                  for t in tasks}
    judge = {"url": cfg.eval.judge_url, "model": cfg.eval.judge_model} if cfg.eval.judge_url or cfg.eval.judge_model \
        else None
    return {"created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "medtune": _version(), "mode": cfg.eval.mode,
            "mcq_format": cfg.eval.mcq_format, "seed": cfg.seed, "judge": judge, "config": cfg.to_dict(),
            "systems": systems, "paired": paired}


def _metrics(task, rows: list[dict], cfg: Config) -> dict:
    if task.kind == "safety":
        return stats.safety_summary(rows, "screen" if cfg.eval.mode == "screen" else "generate")
    return stats.mcq_summary(rows) if task.kind == "mcq" else stats.open_summary(rows, CRITERIA)


def _paired(task, base: list[dict], tuned: list[dict], cfg: Config) -> dict:
    out = stats.paired_summary(base, tuned, cfg.seed, CRITERIA)
    if task.kind == "safety":  # does fine-tuning erode safety? refusals per label, whole path and model alone
        out["safety"] = stats.paired_refusals(base, tuned)
    return out


def _version() -> str:
    from medtune import __version__

    return __version__


