"""The GRPO stage's rewards (training/rewards.py) on hand-made completions: right, wrong, unparseable, unclosed
reasoning, over budget; called as TRL calls them (prompts, completions, completion_ids, and the dataset's columns)."""

import json
import math
import sys
import types

import pytest

from medtune import config as config_mod
from medtune.errors import ConfigError, MedtuneError
from medtune.training import rewards

OPTIONS = json.dumps({"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D"})
RIGHT = "<think>Collagen needs ascorbate.</think>The answer is B"
WRONG = "<think>Bones.</think>The answer is C"
UNPARSEABLE = "<think>Hmm.</think>I am not sure."
UNCLOSED = "<think>Collagen needs ascorbate, so the answer is B"
NO_REASONING = "The answer is B"
COMPLETIONS = [RIGHT, WRONG, UNPARSEABLE, UNCLOSED, NO_REASONING]


def cfg(**values):
    return config_mod.load(None, values={"training.stage": "grpo", **values})


def columns(n=len(COMPLETIONS), **extra):
    return {"reference": ["Vitamin C"] * n, "answer_letter": ["B"] * n, "options": [OPTIONS] * n, **extra}


def call(name, completions=COMPLETIONS, prompts=None, ids=None, config=None, **cols):
    reward = rewards.build(config or cfg(**{"rl.rewards": {name: 1.0}})).functions[0]
    prompts = prompts or ["Q"] * len(completions)
    ids = ids or [[0] * 10 for _ in completions]
    return reward(prompts, completions, ids, **(cols or columns(len(completions))))


def test_format_rewards_closed_reasoning_then_an_answer():
    assert call("format") == [1.0, 1.0, 1.0, 0.0, 0.0]


def test_format_reads_a_completion_whose_prompt_opened_the_reasoning():
    # the r1-cot template's prompt ends inside <think>: the completion starts in the reasoning
    assert call("format", ["Collagen.</think>B"], prompts=["... ### Chain of Thought:\n<think>"]) == [1.0]


def test_mcq_reward_parses_the_letter_as_eval_does():
    # unclosed reasoning: no answer, so no letter; an answer without reasoning counts, as eval counts it (the
    # format reward is what asks for the reasoning)
    assert call("mcq") == [1.0, 0.0, 0.0, 0.0, 1.0]


def test_mcq_reward_is_none_for_open_problems():
    values = call("mcq", [RIGHT, WRONG], reference=["scurvy"] * 2, answer_letter=["", ""], options=["{}", "{}"])
    assert values == [None, None]


def test_match_reward_names_the_reference_or_its_letter():
    assert call("match") == [1.0, 0.0, 0.0, 0.0, 1.0]
    open_problem = dict(reference=["Cefaclor."] * 3, answer_letter=[""] * 3, options=["{}"] * 3)
    answers = ["<think>x</think>The drug is cefaclor, a cephalosporin.", "<think>x</think>vancomycin",
               "<think>x</think>cefaclorine"]
    assert call("match", answers, **open_problem) == [1.0, 0.0, 0.0]


def test_length_reward_is_zero_within_budget_and_falls_to_minus_one():
    config = cfg(**{"rl.rewards": {"length": 1.0}, "rl.length_budget": 100})
    ids = [[0] * n for n in (10, 100, 150, 200, 400)]
    assert call("length", ["x"] * 5, ids=ids, config=config) == [0.0, 0.0, -0.5, -1.0, -1.0]
    assert rewards.length_budget(cfg(**{"rl.max_completion_length": 256})) == 192


class Embedder:
    def encode(self, texts, **_):
        import numpy as np

        return np.array([[1.0, 0.0] if "scurvy" in t.lower() else [0.0, 1.0] for t in texts])


def test_similarity_reward_scores_the_answer_not_the_reasoning(monkeypatch):
    import medtune.embedder

    monkeypatch.setattr(medtune.embedder, "load_embedder", lambda name: Embedder())
    completions = ["<think>rickets?</think>Scurvy.", "<think>scurvy?</think>Rickets.", "<think>scurvy"]
    values = call("similarity", completions, reference=["scurvy"] * 3)
    assert values == pytest.approx([1.0, 0.0, 0.0])  # the unclosed one has no answer: 0


def test_user_reward_is_called_with_trl_signature(tmp_path, monkeypatch):
    module = types.ModuleType("my_rewards")
    seen = {}

    def brevity(prompts, completions, completion_ids, **kwargs):
        seen.update(kwargs)
        return [1.0 / len(c) for c in completions]

    module.brevity = brevity
    monkeypatch.setitem(sys.modules, "my_rewards", module)
    values = call("my_rewards:brevity", ["ab", "abcd"])
    assert values == [0.5, 0.25] and seen["reference"] == ["Vitamin C"] * 2


def test_a_reward_that_raises_is_one_line_naming_it(monkeypatch):
    module = types.ModuleType("bad_rewards")
    module.boom = lambda **kw: 1 / 0
    monkeypatch.setitem(sys.modules, "bad_rewards", module)
    with pytest.raises(MedtuneError, match=r"reward bad_rewards:boom failed: ZeroDivisionError"):
        call("bad_rewards:boom")


def test_a_reward_returning_the_wrong_count_is_named(monkeypatch):
    module = types.ModuleType("short_rewards")
    module.one = lambda **kw: [1.0]
    monkeypatch.setitem(sys.modules, "short_rewards", module)
    with pytest.raises(MedtuneError, match="reward short_rewards:one returned 1 values for 5 completions"):
        call("short_rewards:one")


@pytest.mark.parametrize("spec, message", [
    ({"formt": 1.0}, "unknown reward 'formt'"),
    ({"format": "high"}, "rl.rewards.format = 'high': a reward's weight must be a number"),
    ({"no_such_module_xyz:f": 1.0}, "does not import"),
    ({}, "rl.rewards is empty"),
])
def test_bad_reward_settings_fail_before_training(spec, message):
    with pytest.raises(ConfigError, match=message):
        rewards.build(cfg(**{"rl.rewards": spec}))


def test_judge_reward_needs_an_endpoint():
    with pytest.raises(ConfigError, match="eval.judge_url"):
        rewards.build(cfg(**{"rl.rewards": {"judge": 1.0}}))


def test_judge_scores_scale_to_zero_one():
    assert rewards._scaled({"failed": False, "scores": {"a": 5, "b": 5}}) == 1.0
    assert rewards._scaled({"failed": False, "scores": {"a": 1, "b": 3}}) == 0.25
    assert rewards._scaled({"failed": "timeout"}) is None


def test_weights_follow_the_config_order():
    built = rewards.build(cfg(**{"rl.rewards": {"mcq": 2, "format": 0.5}}))
    assert built.names == ["mcq", "format"] and built.weights == [2.0, 0.5]
    assert not any(math.isnan(w) for w in built.weights)


def test_trl_logs_become_metrics_fields_and_a_progress_line():
    from medtune.training.callbacks import format_line, rl_fields

    logs = {"loss": 0.1, "reward": 0.75, "reward_std": 0.2, "rewards/format/mean": 0.5, "rewards/format/std": 0.5,
            "rewards/mcq/mean": 0.25, "rewards/mcq/std": 0.4, "kl": 0.0012, "completions/mean_length": 180.0,
            "completions/clipped_ratio": 0.25, "frac_reward_zero_std": 0.5}
    row = rl_fields(logs)
    assert row == {"reward": 0.75, "reward_std": 0.2, "kl": 0.0012, "completion_length": 180.0, "clipped_ratio": 0.25,
                   "zero_std_groups": 0.5, "reward_format": 0.5, "reward_format_std": 0.5, "reward_mcq": 0.25,
                   "reward_mcq_std": 0.4}
    line = format_line({"step": 3, "train_loss": 0.1, "peak_mem_mb": 900.0, **row}, 10)
    assert line == ("step 3/10 | loss 0.1000 | reward 0.750 (format 0.500, mcq 0.250) | len 180 | clipped 25% | "
                    "kl 0.0012 | peak 900 MB")
    assert rl_fields({"eval_reward": 0.5, "eval_rewards/mcq/mean": 0.5}, "eval_") == {"reward": 0.5,
                                                                                      "reward_mcq": 0.5}
    assert rl_fields({"loss": 1.0, "grad_norm": 0.5}) == {}  # an SFT log has none
