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
from medtune.evaluation import judging
from medtune.evaluation.records import ItemRecord
from medtune.evaluation.results import EvalResults, SystemResult, TaskResult
from medtune.evaluation.runner import warm_up
from medtune.evaluation.tasks import BUILTIN, load_task
from medtune.evaluation.tasks.base import RunContext
from medtune.rundir import RunDir


def evaluate(cfg: Config, tasks: list, out: Path, adapter: str | None = None, run: str | None = None,
             engine_cls=None) -> tuple[EvalResults, list[ItemRecord]]:
    """(results, records) for `tasks`; the judge and the similarity model are checked before any model loads.
    engine_cls: what loads each system (Engine, the default, or VllmEngine: the same load arguments)."""
    if cfg.eval.mode == "screen":
        return screen(cfg, tasks)
    judged_tasks = {t.name for t in tasks if t.uses_judge}
    # checked now, before any model loads: a judge that is down or missing stops us at once, not after the run
    make_judge = judging.prepare(cfg) if judged_tasks else None
    embedder = _embedder(cfg) if any(t.needs_embedder for t in tasks) else None
    records, systems = [], {}
    for label, load in systems_to_run(cfg, adapter, run, _layer(cfg, tasks), engine_cls):
        systems[label], task_records = evaluate_system(load, tasks, cfg, label, embedder)
        records += task_records
    if make_judge:
        judged = [r for r in records if r.task in judged_tasks and not r.error]  # never ran: nothing to judge
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

    if cfg.eval.compare_base or cfg.eval.compare_model:
        raise MedtuneError("screen mode loads no model, so there is nothing to compare: drop --compare-base and "
                           "--compare-model, or use --mode generate")
    if not cfg.safety.enabled:
        raise MedtuneError("screen mode measures the safety layer: it is switched off (safety.enabled: false)")
    for task in tasks:  # a task of another kind says so before the layer loads
        task.check_screenable()
    layer = load_layer(cfg)
    info = SystemResult(None, None, f"safety layer ({' + '.join(layer.layers)})", layers=layer.layers,
                        threshold=cfg.safety.threshold if layer.classifier is not None else None)
    records = []
    for task in tasks:
        task_records, seconds = task.screen(layer, "layer")
        records += task_records
        info.tasks[task.name] = _task_info(task, task_records, seconds)
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
    if not any(t.generates(cfg) for t in tasks):
        return None
    from medtune.safety import load_layer

    return load_layer(cfg)


def evaluate_system(load, tasks: list, cfg: Config, label: str, embedder) -> tuple[SystemResult, list[ItemRecord]]:
    """One system on every task; its load and its warm-up are timed apart from the tasks (load_s, warm_up_s), so
    the system evaluated first does not pay the process's one-time start-up inside its first task."""
    started = time.perf_counter()
    engine, source = load()
    loaded = time.perf_counter()
    warm_up(engine)
    info = SystemResult(source.config.model.name, str(source.adapter) if source.adapter else None, engine.name,
                        round(loaded - started, 3), round(time.perf_counter() - loaded, 3), **engine_of(engine))
    context = RunContext(cfg, label, embedder)
    records = []
    for task in tasks:
        task_records, seconds = task.run(engine, context)
        records += task_records
        info.tasks[task.name] = _task_info(task, task_records, seconds)
    del engine  # the next system loads into the memory this one held
    gc.collect()
    return info, records


def engine_of(engine) -> dict:
    """{engine, quant} for results.json: which engine answered, and the quantization of its GGUF file (llama.cpp)."""
    return {"engine": engine_name(engine), "quant": getattr(engine, "quant", None)}


def engine_name(engine) -> str:
    """transformers, vllm or llama.cpp: the engine_name of an engine, its class or its loader (None: the default)."""
    return getattr(engine, "engine_name", "transformers")


def _task_info(task, records: list[ItemRecord], seconds: float) -> TaskResult:
    return TaskResult(task.kind, task.origin, round(seconds, 2), round(len(records) / max(seconds, 1e-9), 3))


def _embedder(cfg: Config):
    from medtune.embedder import load_embedder

    return load_embedder(cfg.eval.similarity_model)


def summarize(cfg: Config, tasks: list, systems: dict[str, SystemResult], records: list[ItemRecord]) -> EvalResults:
    """Each system's summary per task, and tuned minus base per task when there is a base, by each task's kind."""
    by_key: dict[tuple, list[ItemRecord]] = {}
    for r in records:
        by_key.setdefault((r.system, r.task), []).append(r)
    for label, info in systems.items():
        for task in tasks:
            info.tasks[task.name].metrics = task.summary(by_key.get((label, task.name), []), cfg.eval.mode)
    paired = {}
    if "base" in systems:
        paired = {t.name: t.paired(by_key.get(("base", t.name), []), by_key.get(("tuned", t.name), []), cfg.seed)
                  for t in tasks}
    judge = {"url": cfg.eval.judge_url, "model": cfg.eval.judge_model} if cfg.eval.judge_url or cfg.eval.judge_model \
        else None
    return EvalResults(time.strftime("%Y-%m-%dT%H:%M:%S%z"), _version(), cfg.eval.mode, cfg.eval.mcq_format, cfg.seed,
                       judge, cfg.to_dict(), systems, paired)


def _version() -> str:
    from medtune import __version__

    return __version__


