"""`medtune eval`: medical benchmarks, judged open-ended answers, and base versus tuned on the same items.

    medtune eval --model M [--adapter A | --run DIR] --task medqa --task my_mcq.jsonl --data-dir DIR
                 [--mode loglik|generate] [--limit N] [--seed S] [--batch-size B] [--out DIR]
    medtune eval --run DIR --compare-base --task test.jsonl --judge-url http://localhost:8000/v1

Settings come from the eval section of the config (the run's own config.yaml when none is given), then
key=value overrides, then flags. Every task file, the judge (endpoint or local model) and the similarity model
are checked before any model loads. Writes results.json, items.jsonl, report.md and plots/ into the output folder.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path

from medtune.cliargs import add_config_arguments, load_config
from medtune.config import Config
from medtune.errors import ConfigError, MedtuneError
from medtune.evaluation import judging, stats
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.report import write_outputs
from medtune.evaluation.runner import run_task
from medtune.evaluation.tasks import BUILTIN, load_task

FLAGS = {  # flag dest -> dotted config key
    "model": "model.name", "tasks": "eval.tasks", "mode": "eval.mode", "limit": "eval.limit", "seed": "seed",
    "batch_size": "eval.batch_size", "max_tokens": "eval.max_tokens", "temperature": "eval.temperature",
    "data_dir": "eval.data_dir", "out": "eval.out_dir", "mcq_format": "eval.mcq_format",
    "compare_base": "eval.compare_base", "compare_model": "eval.compare_model", "judge_url": "eval.judge_url",
    "judge_model": "eval.judge_model", "similarity_model": "eval.similarity_model", "hub_split": "eval.hub_split",
    "hub_config": "eval.hub_config",
}
AT_LEAST_ONE = (("batch_size", "--batch-size"), ("max_tokens", "--max-tokens"), ("judge_workers", None))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    what = parser.add_argument_group("what to evaluate")
    what.add_argument("--model", "-m", help="base model: hub id or local folder")
    what.add_argument("--adapter", help="PEFT adapter folder on top of --model")
    what.add_argument("--run", help="a medtune run directory (its adapter and config.yaml)")
    what.add_argument("--task", "-t", dest="tasks", action="append",
                      help=f"{', '.join(BUILTIN)}, an MCQ file (medtune's schema or a MedQA, MedMCQA, MMLU or "
                           "PubMedQA hub layout), an open-ended file with reference answers (prepare's test split, "
                           "medical-o1 records), or a hub dataset id; repeat for several")
    what.add_argument("--data-dir", help="folder holding <task>.jsonl for the built-in task names; without it they "
                                         "load from the hub (pubmedqa: all 1000 PQA-L items, not the 500-item test "
                                         "split a local pubmedqa.jsonl holds)")
    what.add_argument("--hub-split", help="split of a --task that is a hub dataset id (default test)")
    what.add_argument("--hub-config", help="config of a --task that is a hub dataset id")
    what.add_argument("--compare-base", action="store_true", default=None,
                      help="also evaluate the base model without the adapter; report paired deltas")
    what.add_argument("--compare-model", help="a second model or run directory to compare against (as the base)")
    how = parser.add_argument_group("how")
    how.add_argument("--mode", choices=("loglik", "generate"), help="multiple choice by log-likelihood (default) "
                                                                    "or by generating and parsing the letter")
    how.add_argument("--mcq-format", choices=("letters", "cloze"), help="loglik prompt style (default letters)")
    how.add_argument("--limit", type=int, help="first N items of each task")
    how.add_argument("--seed", type=int, help="seed for sampling and the bootstrap")
    how.add_argument("--batch-size", type=int, help="prompts per forward pass")
    how.add_argument("--max-tokens", type=int, help="generation budget per item")
    how.add_argument("--temperature", type=float, help="0 = greedy (default)")
    how.add_argument("--similarity-model", help="sentence-transformers model (default: bundled all-MiniLM-L6-v2)")
    how.add_argument("--judge-url", help="OpenAI-compatible endpoint of the judge, e.g. http://localhost:8000/v1")
    how.add_argument("--judge-model", help="model name at --judge-url; without it, a local model to judge with")
    how.add_argument("--out", help="output folder (default <run>/eval, or <output_dir>/eval)")


def main(args: argparse.Namespace) -> int:
    cfg = resolve_config(args)
    check_numbers(cfg)
    tasks = load_tasks(cfg)
    out = output_dir(cfg, args)
    open_tasks = {t.name for t in tasks if t.kind == "open"}
    if not open_tasks and (cfg.eval.judge_url or cfg.eval.judge_model):
        print("medtune eval: note: the judge grades open-ended tasks only; none was given", file=sys.stderr)
    # checked now, before any model loads: a judge that is down or missing stops us at once, not after the run
    make_judge = judging.prepare(cfg) if open_tasks else None
    embedder = _embedder(cfg) if open_tasks else None
    records, systems = [], {}
    for label, load in systems_to_run(cfg, args):
        systems[label], task_records = evaluate_system(load, tasks, cfg, label, embedder)
        records += task_records
    if make_judge:
        judged = [r for r in records if r["task"] in open_tasks and not r["error"]]  # never ran: nothing to judge
        judging.add_judgments(judged, make_judge(), cfg, out)
    results = summarize(cfg, tasks, systems, records)
    write_outputs(out, results, records)
    cfg.save(out / "config.yaml")
    print_summary(results, out)
    return 0


def resolve_config(args: argparse.Namespace) -> Config:
    """The weights' own config.yaml (run dir, or beside an adapter) when --config is absent, so prompts and the
    system prompt are the ones training used; then overrides and flags."""
    from medtune.inference import loading

    flags = {key: getattr(args, dest) for dest, key in FLAGS.items()}
    if args.config is None and not any("=" not in item for item in args.items):
        found = loading.find_config(args.model, args.adapter, args.run)
        args = argparse.Namespace(**{**vars(args), "config": str(found) if found else None})
    return load_config(args, flags)


def check_numbers(cfg: Config) -> None:
    """Counts that must be at least 1, refused before anything loads (0 would crash or hang mid-run)."""
    for key, flag in AT_LEAST_ONE:
        value = getattr(cfg.eval, key)
        if value < 1:
            raise ConfigError(f"eval.{key}{f' ({flag})' if flag else ''} must be at least 1, got {value}")


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


def output_dir(cfg: Config, args: argparse.Namespace) -> Path:
    if cfg.eval.out_dir:
        return Path(cfg.eval.out_dir)
    return Path(args.run) / "eval" if args.run else Path(cfg.output_dir) / "eval"


def systems_to_run(cfg: Config, args: argparse.Namespace) -> list[tuple[str, Callable]]:
    """(label, loader) pairs, loaded one at a time: the tuned (or only) model, then the base to compare with."""
    from medtune.inference import loading
    from medtune.inference.engine import Engine

    source = loading.resolve(cfg, args.adapter, args.run)  # checks --run / --adapter before any weights load
    comparing = cfg.eval.compare_base or cfg.eval.compare_model
    main_label = "tuned" if comparing else "model"
    out = [(main_label, lambda: (Engine.load(adapter=args.adapter, run=args.run, config=cfg), source))]
    if cfg.eval.compare_base and cfg.eval.compare_model:
        raise MedtuneError("give --compare-base or --compare-model, not both")
    if cfg.eval.compare_base:
        if source.adapter is None and not args.run:
            raise MedtuneError("--compare-base needs --run or --adapter: the base is the model without the adapter")
        base = cfg if cfg.model.name else source.config
        base_source = loading.resolve(base)
        out.append(("base", lambda: (Engine.load(config=base), base_source)))
    elif cfg.eval.compare_model:
        out.append(("base", lambda: _load_other(cfg, cfg.eval.compare_model)))
    return out


def _load_other(cfg: Config, name: str):
    from medtune.inference import loading
    from medtune.inference.engine import Engine

    if (Path(name) / loading.CONFIG_FILE).is_file():  # a run directory brings its own prompts
        return Engine.load(run=name), loading.resolve(loading.load_config(run=name), run=name)
    other = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, name=name))
    return Engine.load(config=other), loading.resolve(other)


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


def print_summary(results: dict, out: Path) -> None:
    for label, info in results["systems"].items():
        for name, task in info["tasks"].items():
            m = task["metrics"]
            if task["kind"] == "mcq":
                extra = f", acc_norm {m['acc_norm']:.4f}" if "acc_norm" in m else f", unparseable {m['unparseable']}"
                extra += f", too long {m['too_long']}" if m.get("too_long") else ""
                line = f"accuracy {m['accuracy']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]{extra}"
            else:
                sim = m.get("similarity", {})
                line = f"similarity mean {sim.get('mean', float('nan')):.4f}" + (
                    f", judge correctness {m['judge'].get('correctness', float('nan')):.2f}" if "judge" in m else "")
            print(f"{label:<6} {name:<14} {m['items']:>5} items  {line}  ({task['items_per_s']:.2f} items/s)")
    for name, p in results["paired"].items():
        if "accuracy" in p:
            a = p["accuracy"]
            print(f"tuned - base {name}: {a['delta']:+.4f} [{a['ci95'][0]:+.4f}, {a['ci95'][1]:+.4f}], "
                  f"wins/ties/losses {a['wins']}/{a['ties']}/{a['losses']}, McNemar p {a['p_value']:.4g}")
    print(f"results: {out / 'results.json'}, {out / 'report.md'}")
