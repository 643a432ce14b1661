"""Every input evaluated on the same items with the same settings: one set of evaluation settings for all (a given
config file, else the first run's config; then key=value overrides; then the flags), a stored evaluation reused
when it holds exactly those items under those settings, else medtune.evaluation run on the input (one system per
input)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from statistics import mean

from medtune import config as config_mod
from medtune.compare.runs import Input
from medtune.config import Config
from medtune.errors import ConfigError, MedtuneError
from medtune.evaluation.records import ItemRecord, read_items
from medtune.evaluation.results import read_results

# what decides which items are asked and how they are answered: the same for every input
SHARED = ("seed", "eval.tasks", "eval.limit", "eval.mode", "eval.mcq_format", "eval.data_dir", "eval.hub_split",
          "eval.hub_config", "eval.answer_base", "eval.max_tokens", "eval.temperature", "eval.judge_url",
          "eval.judge_model")
ONE_SYSTEM = {"eval.compare_base": False, "eval.compare_model": None, "eval.out_dir": None}
NOT_OVERRIDDEN = {  # key -> why an override of it cannot apply to every input
    "model.name": "each input names its own model: give it as an input",
    "output_dir": "a run's own folder tells it apart; compare writes into --out",
    "eval.out_dir": "compare writes each evaluation into OUT/evals/<name>/",
    "eval.compare_base": "every input is one system: give the base model as an input",
    "eval.compare_model": "every input is one system: give the other model as an input",
}
STORED_SYSTEMS = ("tuned", "model")  # a run's own system in its eval/ (with or without a comparison)


@dataclass
class Evaluation:
    records: list[ItemRecord]  # the input's item records of the requested tasks (items.jsonl lines)
    seconds: dict[str, float]  # per task, as the evaluation measured it
    source: str  # the folder whose items.jsonl was reused, or where a new evaluation was written
    reused: bool = True  # False: evaluated by this comparison
    load_s: float | None = None  # the model's load, kept out of `seconds` (None: reused, nothing loaded)
    warm_up_s: float | None = None  # the untimed first answer after the load (evaluation's warm_up)
    engine: str = "transformers"  # what answered: transformers, vllm, or llama.cpp with its quantization


def reference(inputs: list[Input], config: str | None = None) -> str | Path | None:
    """The config every input takes its evaluation settings from, and a model given by name its prompts: the one
    given, else the first run's config.yaml (None: the defaults)."""
    first = first_run(inputs)
    return config or (first.run.config if first else None)


def shared_keys(given_config: bool) -> tuple[str, ...]:
    """SHARED; a config file given for the purpose sets its whole eval section on every input too."""
    if not given_config:
        return SHARED
    return SHARED + tuple(f"eval.{name}" for name in Config().to_dict()["eval"] if f"eval.{name}" not in SHARED)


def check_overrides(overrides: list[str]) -> None:
    """An override is set on every input: not on what tells the inputs apart or where compare writes."""
    for item in overrides:
        key = item.partition("=")[0].strip()
        if key in NOT_OVERRIDDEN:
            raise ConfigError(f"override {item}: {NOT_OVERRIDDEN[key]}")


def shared_settings(reference_config, flags: dict, overrides: list[str] = (), keys: tuple = SHARED) -> dict:
    """{dotted key: value} of `keys`: a flag when given, else the reference config (see reference()) with the
    key=value overrides."""
    check_overrides(overrides)
    base = config_mod.load(reference_config, list(overrides)).to_dict()
    values = {key: flags[key] if flags.get(key) is not None else dotted(base, key) for key in keys}
    if values["eval.mode"] == "screen":
        raise MedtuneError("eval.mode screen runs the safety layer alone, with no model to compare: use --mode "
                           "loglik or generate")
    if not values["eval.tasks"]:
        raise MedtuneError("no task to compare on: give --task (medqa, medmcqa, pubmedqa, mmlu_medical or a file)")
    return values | ONE_SYSTEM


def dotted(tree: dict, key: str):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def input_config(inp: Input, shared: dict, reference_config=None, overrides: list[str] = ()) -> Config:
    """A run's own config.yaml (its prompts, template, generation settings) with the overrides and the shared
    settings over it; a model name gets the reference config with its model.name, as eval's --compare-base gives
    the base."""
    if inp.is_run:
        return config_mod.load(inp.run.config, list(overrides), values=shared)
    return config_mod.load(reference_config, list(overrides), values={**shared, "model.name": inp.given})


def first_run(inputs: list[Input]) -> Input | None:
    return next((i for i in inputs if i.is_run), None)


def expected_items(tasks: list) -> dict[str, list]:
    return {t.name: [ex.id for ex in t.examples()] for t in tasks}


def evaluation_of(inp: Input, cfg: Config, tasks: list, folder: Path, note: Callable[[str], None],
                  engine_cls=None) -> Evaluation:
    """The stored evaluation of the run (its eval/) or of an earlier compare (`folder`) made on the same engine,
    else a new one there (its model loaded by engine_cls, default Engine)."""
    from medtune.evaluation.evaluate import engine_name

    candidates = ([inp.run.eval] if inp.is_run else []) + [folder]
    for candidate in candidates:
        found, why_not = stored(candidate, cfg, tasks, engine_name(engine_cls))
        if found:
            return found
        if why_not:
            note(f"{candidate}: {why_not}: not reused for {inp.label}")
    return run_evaluation(inp, cfg, tasks, folder, engine_cls)


def stored(folder: Path, cfg: Config, tasks: list,
           engine: str = "transformers") -> tuple[Evaluation | None, str | None]:
    """(the evaluation in folder, None) when it holds the same items under the same settings on `engine` (under
    llama.cpp, at the same generation.gguf_quant too), else (None, why not; None when there is no evaluation there
    at all)."""
    results = read_results(folder / "results.json")
    if results is None or not (folder / "items.jsonl").is_file():
        return None, None
    system = next((s for s in STORED_SYSTEMS if s in results.systems), None)
    if system is None:
        return None, "its results.json holds no tuned or single system"
    made_on = results.systems[system].engine
    if made_on != engine:  # numbers from another engine (or GGUF quantization) are never mixed in silently
        return None, f"made on {results.systems[system].engine_label}, not {engine}"
    records = [r for r in read_items(folder / "items.jsonl") if r.system == system]
    extra = ["generation.gguf_quant"] if engine == "llama.cpp" else []
    why_not = _other_settings(results.config, cfg, tasks, extra) or _other_items(records, tasks)
    if why_not:
        return None, why_not
    names = {t.name for t in tasks}
    seconds = {n: results.systems[system].tasks[n].seconds for n in names}
    return Evaluation([r for r in records if r.task in names], seconds, str(folder),
                      engine=results.systems[system].engine_label), None


def _other_items(records: list[dict], tasks: list) -> str | None:
    """How the stored records' items differ from the tasks' (None: the same item ids, task by task)."""
    for name, ids in expected_items(tasks).items():
        held = sorted(str(r.id) for r in records if r.task == name)
        if not held:
            return f"no {name} items"
        if held != sorted(map(str, ids)):
            return f"{name} holds {len(held)} other items than the {len(ids)} asked for"
    return None


def _other_settings(stored_cfg: dict, cfg: Config, tasks: list, extra: list[str] = ()) -> str | None:
    """What in a stored evaluation's config differs from this comparison's, in words (None: nothing that matters)."""
    now = cfg.to_dict()
    keys = ["model.name", "output_dir", "seed", "data.system_prompt", "data.template", *extra]
    for task in tasks:  # what each task's answers were asked and written under
        keys += [k for k in task.settings_that_matter(cfg) if k not in keys]
    for key in keys:
        differs = _difference(key, dotted(stored_cfg, key), dotted(now, key))
        if differs:
            return differs
    return None


def _difference(key: str, stored, now) -> str | None:
    """'made with KEY = STORED, not NOW' for the first setting (under a section, its first field) that differs."""
    if isinstance(stored, dict) and isinstance(now, dict):
        for name in sorted(set(stored) | set(now)):
            differs = _difference(f"{key}.{name}", stored.get(name), now.get(name))
            if differs:
                return differs
        return None
    return f"made with {key} = {stored!r}, not {now!r}" if stored != now else None


def run_evaluation(inp: Input, cfg: Config, tasks: list, folder: Path, engine_cls=None) -> Evaluation:
    """medtune.evaluation on this input alone; its outputs written to `folder`, where a later compare finds them.
    The task times start after the model is loaded and warmed up (evaluate_system), so no input pays for those."""
    from medtune.evaluation.evaluate import evaluate
    from medtune.evaluation.report import write_outputs

    results, records = evaluate(cfg, tasks, folder, None, str(inp.run.root) if inp.is_run else None, engine_cls)
    write_outputs(folder, results, records)
    cfg.save(folder / "config.yaml")
    system = results.systems["model"]
    seconds = {name: t.seconds for name, t in system.tasks.items()}
    return Evaluation(records, seconds, str(folder), reused=False, load_s=system.load_s,
                      warm_up_s=system.warm_up_s, engine=system.engine_label)


# ---------------------------------------------------------------- per input and task


@dataclass
class TaskFigures:
    """One input on one task: the evaluation's own summary (its kind's), the task's time, and how fast and how long
    it wrote (generated tokens per second of task time; answer and reasoning words)."""

    summary: object
    seconds: float
    speed: dict = field(default_factory=dict)  # generated_tokens, generation_tokens_per_s, mean_*_words ({}: none)

    def to_json(self) -> dict:
        return {**self.summary.to_json(), "seconds": self.seconds, **self.speed}


def task_figures(task, records: list[ItemRecord], seconds: float) -> TaskFigures:
    return TaskFigures(task.summary(records, "generate"), seconds,
                       lengths(records, seconds if task.timed_generation else None))


def lengths(records: list[ItemRecord], seconds: float | None) -> dict:
    """Generated tokens per second of task time (the safety layer's screening of requests and answers included;
    None where the task's time is mostly the layer's), and mean answer and reasoning length in words (not tokens:
    two models' tokenizers cut the same text differently)."""
    ran = [r for r in records if r.generated is not None and r.generated.generated_tokens]
    if not ran:
        return {}
    tokens = sum(r.generated.generated_tokens for r in ran)
    return {"generated_tokens": tokens, "generation_tokens_per_s": tokens / max(seconds, 1e-9) if seconds else None,
            "mean_answer_words": mean(len((r.answer or "").split()) for r in ran),
            "mean_reasoning_words": mean(len((r.reasoning or "").split()) for r in ran)}
