"""Which judge grades the open-ended answers of `medtune eval`, checked before any model loads, and grading them.

The judge is an OpenAI-compatible endpoint (eval.judge_url, reached and asked for its models now) or a local
model (eval.judge_model alone: its folder or hub id and config.json are read now, its weights only when the
answers are ready), so a judge that cannot work stops the run before it starts, not after.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from medtune.config import Config
from medtune.errors import MedtuneError
from medtune.evaluation.judge import EngineJudge, JudgeCache, JudgeItem, ThreadedJudge, judge_all
from medtune.evaluation.runner import progress_bar


def prepare(cfg: Config) -> Callable[[], object] | None:
    """Check the configured judge; a function that returns the judge backend (None: no judge configured)."""
    if cfg.eval.judge_url:
        judge = http_judge(cfg)
        return lambda: judge
    if cfg.eval.judge_model:
        judge_config, name = local_judge(cfg)
        return lambda: _load_local_judge(cfg, judge_config, name)
    return None


def http_judge(cfg: Config) -> ThreadedJudge:
    from medtune.endpoint import ChatEndpoint

    endpoint = ChatEndpoint(cfg.eval.judge_url, cfg.eval.judge_model, cfg.eval.judge_api_key_env).check()
    return ThreadedJudge(endpoint.id, endpoint.reply, cfg.eval.judge_workers)


def local_judge(cfg: Config) -> tuple[Config, str]:
    """(the judge's config, the name its judgments are cached under), checked without loading weights: the folder
    (or hub id) and its config.json, read the way Engine.load reads them."""
    from medtune.inference import weights
    from medtune.models.load import load_model_config

    try:
        source = weights.resolve(weights.config_beside(model=cfg.eval.judge_model))
        load_model_config(source.config.model)
    except MedtuneError as e:
        raise MedtuneError(f"judge model (eval.judge_model): {e}") from None
    folder = Path(source.config.model.name).expanduser()
    # the resolved path, not the folder's name: two runs' "merged/" folders are different judges
    return source.config, str(folder.resolve()) if folder.is_dir() else source.config.model.name


def _load_local_judge(cfg: Config, judge_config: Config, name: str) -> EngineJudge:
    from medtune.inference.engine import Engine

    return EngineJudge(Engine.load(config=judge_config), batch_size=cfg.eval.batch_size, name=name)


def add_judgments(records: list, judge, cfg: Config, out: Path) -> None:
    """Judge the given open-ended answers (ItemRecords) of every system; each verdict goes to record.scores.judge."""
    items = [JudgeItem(r.id, r.question, r.gold, r.answer, r.reasoning) for r in records]
    cache = JudgeCache(cfg.eval.judge_cache or out / "judge_cache.jsonl")
    with progress_bar(len(items), f"judge {judge.id}") as update:
        verdicts = judge_all(judge, items, cache, progress=update)
    for record, verdict in zip(records, verdicts):
        record.scores.judge = verdict
