"""The GRPO stage's rewards, built on evaluation's own scoring (evaluation/scoring.py), so a reward and `medtune eval`
read a completion the same way: the same reasoning split, the same letter parsing, the same judge client.

Each reward is a callable with TRL's reward signature, reward(prompts, completions, completion_ids, **columns) ->
one float per completion (None where it does not apply: TRL leaves it out of the mean), and a `__name__` TRL logs
it under (rewards/<name>/mean and /std). The columns are a Reference's (data/verifiable.py): reference,
answer_letter, options (JSON text of {letter: text}).

    format      1 when the reasoning is closed and an answer follows, else 0
    mcq         1 when the answer's letter is the gold one, else 0 (None for open problems)
    match       1 when the answer names the reference (for an MCQ its option text, or the gold letter), else 0
    similarity  the answer's embedding similarity to the reference (eval's model), in [-1, 1]
    judge       the judge's mean criterion score scaled to [0, 1] (eval.judge_url; None when it fails)
    length      0 within rl.length_budget tokens, falling to -1 at twice the budget
    module:fn   the user's own function, called as TRL calls it
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medtune.config import Config
from medtune.errors import ConfigError, MedtuneError, first_line
from medtune.evaluation import scoring
from medtune.inference.reasoning import prompt_opens_reasoning

BUILT_IN = ("format", "mcq", "match", "similarity", "judge", "length")


class Reward:
    """One named reward; an exception inside it is one line naming the reward, not a traceback from TRL's loop."""

    def __init__(self, name: str, score: Callable[..., list]):
        self.__name__, self.score = name, score

    def __call__(self, prompts, completions, completion_ids=None, **columns) -> list:
        try:
            values = list(self.score(prompts, completions, completion_ids, **columns))
        except MedtuneError:
            raise
        except Exception as error:  # a user's reward, a judge's reply, an embedder: any of them may fail
            raise MedtuneError(f"reward {self.__name__} failed: {type(error).__name__}: {first_line(error)}") from error
        if len(values) != len(completions):
            raise MedtuneError(f"reward {self.__name__} returned {len(values)} values for {len(completions)} "
                               "completions (one per completion expected)")
        return values


@dataclass
class Rewards:
    functions: list[Reward]
    weights: list[float]

    @property
    def names(self) -> list[str]:
        return [f.__name__ for f in self.functions]


def build(cfg: Config, run_root: Path | None = None) -> Rewards:
    """The configured rewards in rl.rewards' order; ConfigError for an unknown name or a weight that is not a
    number, before any model loads."""
    if not cfg.rl.rewards:
        raise ConfigError("rl.rewards is empty: name at least one reward (e.g. {format: 1.0, mcq: 1.0})")
    functions, weights = [], []
    for name, weight in cfg.rl.rewards.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise ConfigError(f"rl.rewards.{name} = {weight!r}: a reward's weight must be a number")
        functions.append(_one(str(name), cfg, run_root))
        weights.append(float(weight))
    return Rewards(functions, weights)


def _one(name: str, cfg: Config, run_root: Path | None) -> Reward:
    if name in _FACTORIES:
        return Reward(name, _FACTORIES[name](cfg, run_root))
    if ":" in name:
        return Reward(name, _user_function(name))
    raise ConfigError(f"rl.rewards: unknown reward {name!r}; built in: {', '.join(BUILT_IN)}, or module:function "
                      "(a function with TRL's reward signature)")


def _parts(prompts, completions) -> list[scoring.Split]:
    return [scoring.split(c, prompt_opens_reasoning(p)) for p, c in zip(prompts, completions)]


def _format(cfg: Config, run_root) -> Callable:
    return lambda prompts, completions, ids, **_: [float(scoring.format_ok(s)) for s in _parts(prompts, completions)]


def _mcq(cfg: Config, run_root) -> Callable:
    def score(prompts, completions, ids, answer_letter=None, options=None, **_):
        letters, opts = answer_letter or [""] * len(completions), _options(options, len(completions))
        return [float(scoring.mcq_choice(s, o) == gold) if gold else None
                for s, gold, o in zip(_parts(prompts, completions), letters, opts)]
    return score


def _match(cfg: Config, run_root) -> Callable:
    def score(prompts, completions, ids, reference=None, answer_letter=None, options=None, **_):
        refs, letters = _column(reference, "reference", "match"), answer_letter or [""] * len(completions)
        opts = _options(options, len(completions))
        return [float(scoring.names_reference(s, ref) or bool(gold and scoring.mcq_choice(s, o) == gold))
                for s, ref, gold, o in zip(_parts(prompts, completions), refs, letters, opts)]
    return score


def _similarity(cfg: Config, run_root) -> Callable:
    embedder = []  # loaded at the first call: the model loads only when the reward is used

    def score(prompts, completions, ids, reference=None, **_):
        if not embedder:
            from medtune.embedder import load_embedder

            embedder.append(load_embedder(cfg.eval.similarity_model))
        refs = _column(reference, "reference", "similarity")
        return scoring.similarity(_parts(prompts, completions), refs, embedder[0])
    return score


def _judge(cfg: Config, run_root) -> Callable:
    """eval.judge_url's endpoint, checked now; its judgments cached in <run>/judge_cache.jsonl as eval caches them."""
    if not cfg.eval.judge_url:
        raise ConfigError("the judge reward needs eval.judge_url (an OpenAI-compatible endpoint, e.g. a served "
                          "verifier model); a local eval.judge_model would hold a second model in memory while "
                          "training and is not offered here")
    from medtune.evaluation.judge import JudgeCache, JudgeItem, judge_all
    from medtune.evaluation.judging import http_judge

    judge = http_judge(cfg)
    cache = JudgeCache(cfg.eval.judge_cache or (Path(run_root) / "judge_cache.jsonl" if run_root else None))

    def score(prompts, completions, ids, reference=None, **_):
        refs = _column(reference, "reference", "judge")
        items = [JudgeItem(f"rl-{i}", p, ref, s.answer, s.reasoning)
                 for i, (p, ref, s) in enumerate(zip(prompts, refs, _parts(prompts, completions)))]
        return [_scaled(v) for v in judge_all(judge, items, cache)]
    return score


def _scaled(verdict: dict) -> float | None:
    """The judge's 1-5 criterion scores, averaged, to [0, 1]; None for a failed judgment (left out of the mean)."""
    scores = list((verdict.get("scores") or {}).values())
    if verdict.get("failed") or not scores:
        return None
    return (sum(scores) / len(scores) - 1.0) / 4.0


def length_penalty(n_tokens: int, budget: int) -> float:
    """0 within the budget, then down in a straight line to -1 at twice the budget (and no lower)."""
    return -min(1.0, max(0, n_tokens - budget) / budget)


def length_budget(cfg: Config) -> int:
    return cfg.rl.length_budget or max(1, cfg.rl.max_completion_length * 3 // 4)


def _length(cfg: Config, run_root) -> Callable:
    budget = length_budget(cfg)

    def score(prompts, completions, completion_ids, **_):
        return [length_penalty(len(ids), budget) for ids in completion_ids]
    return score


def _user_function(spec: str) -> Callable:
    """module:function, imported now (a typo fails before training, with the module's own error)."""
    module_name, _, attr = spec.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as error:
        raise ConfigError(f"rl.rewards: {spec!r} does not import ({first_line(error)}): give module:function, with "
                          "the module on the Python path") from None
    if not callable(function):
        raise ConfigError(f"rl.rewards: {spec!r} is not callable")
    return lambda prompts, completions, completion_ids, **columns: function(
        prompts=prompts, completions=completions, completion_ids=completion_ids, **columns)


def _options(column, n: int) -> list[dict]:
    """The options column: JSON text per row (as training/grpo.py writes it), or dicts (a user's own dataset)."""
    if column is None:
        return [{}] * n
    return [json.loads(o) if isinstance(o, str) else dict(o or {}) for o in column]


def _column(values, name: str, reward: str) -> list:
    if values is None:
        raise MedtuneError(f"the {reward} reward needs the data's {name} column: train on verifiable problems "
                           "(data.format mcq or verifiable)")
    return values


_FACTORIES = {"format": _format, "mcq": _mcq, "match": _match, "similarity": _similarity, "judge": _judge,
              "length": _length}
