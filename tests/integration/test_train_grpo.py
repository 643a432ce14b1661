"""`training.stage: grpo` end to end on a tiny model: rewards logged one by one, the adapter moves and loads in PEFT,
rl.init_from continues an SFT run's adapter (the same logits before the first step), a run killed after a
checkpoint resumes to the same rewards and losses, a judge reward asks a stub endpoint, and the run directory is the
one SFT leaves (run.json, plots, card)."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from endpoint_stub import ScriptedEndpoint
from safetensors.torch import load_file
from transformers import TrainerCallback

from fixture_data import MEDICAL_O1_SAMPLE, RL_MCQ, RL_OPEN
from medtune import config as config_mod
from medtune.errors import ConfigError, DataError, MedtuneError
from medtune.evaluation.judge import CRITERIA
from medtune.rundir import RunDir
from medtune.training.run import train

pytestmark = pytest.mark.slow

# A random tiny model never closes a reasoning block nor names a letter, so the built-in rewards are the same for
# every completion of a group (no advantage, no update). A reward that differs between random completions (the share
# of their characters that are vowels) gives the policy something to learn.
VOWELS = """
import sys, types
module = types.ModuleType("grpo_test_rewards")
module.vowels = lambda completions, **kw: [sum(ch in "aeiou" for ch in c) / max(len(c), 1) for c in completions]
sys.modules["grpo_test_rewards"] = module
"""
exec(VOWELS)
REWARDS = {"format": 1.0, "mcq": 1.0, "length": 0.5, "grpo_test_rewards:vowels": 1.0}
GRPO = {"data.train_file": str(RL_MCQ), "training.stage": "grpo", "model.max_length": 512, "data.split": "0.8,0.2",
        "training.batch_size": 4, "rl.num_generations": 4, "rl.max_completion_length": 12,
        "training.learning_rate": 5e-2, "training.max_steps": 4, "training.logging_steps": 1,
        "training.eval_on_start": False, "rl.rewards": REWARDS, "rl.length_budget": 6, "lora.dropout": 0.0,
        "seed": 5}


def cfg_for(model_dir, out, **values):
    return config_mod.load(None, values={**GRPO, "model.name": str(model_dir), "output_dir": str(out), **values})


def rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def adapter(run_dir):
    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


def test_grpo_logs_each_reward_moves_the_adapter_and_leaves_a_run(tiny_llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    result = train(cfg_for(tiny_llama, tmp_path / "run", **{"training.eval_steps": 2}))
    assert result.status == "completed" and result.global_step == 4
    logged = [r for r in rows(result.run_dir) if "train_loss" in r]
    assert [r["step"] for r in logged] == [1, 2, 3, 4]
    for row in logged:
        assert {"reward", "reward_format", "reward_mcq", "reward_length", "reward_grpo_test_rewards:vowels",
                "reward_format_std", "completion_length", "clipped_ratio"} <= set(row)
        # the total is the weighted sum of the rewards' means (TRL sums per completion, then averages)
        total = (row["reward_format"] + row["reward_mcq"] + 0.5 * row["reward_length"]
                 + row["reward_grpo_test_rewards:vowels"])
        assert row["reward"] == pytest.approx(total, abs=1e-5)
        assert row["completion_length"] <= 12 and -1.0 <= row["reward_length"] <= 0.0
    assert any("val_reward" in r for r in rows(result.run_dir))  # the validation prompts were sampled too
    # the adapter moved away from LoRA's start (B = 0) and loads in PEFT
    weights = adapter(result.run_dir)
    assert any(v.abs().sum() > 0 for k, v in weights.items() if "lora_B" in k)
    PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(result.run_dir / "adapter"))
    info = json.loads((result.run_dir / "run.json").read_text())
    assert info["stage"] == "grpo" and info["rewards"] == REWARDS
    assert info["final_train_reward"] == logged[-1]["reward"]
    assert (result.run_dir / "plots" / "rewards.png").is_file()
    card = (result.run_dir / "README.md").read_text()
    assert "GRPO with verifiable rewards (format x 1, mcq x 1, length x 0.5, grpo_test_rewards:vowels x 1)" in card


class FirstLogits(TrainerCallback):
    """The policy's logits on one prompt before the first step."""

    def __init__(self, ids):
        self.ids, self.logits = ids, None

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        model.eval()
        with torch.no_grad():
            self.logits = model(input_ids=torch.tensor([self.ids])).logits.clone()


def test_init_from_continues_the_sft_adapter(tiny_llama, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    sft = config_mod.load(None, values={"data.train_file": str(MEDICAL_O1_SAMPLE), "model.name": str(tiny_llama),
                                        "output_dir": str(tmp_path / "sft"), "model.max_length": 192,
                                        "data.overlong": "truncate", "data.limit": 12, "training.max_steps": 3,
                                        "training.learning_rate": 1e-2, "lora.dropout": 0.0})
    train(sft)
    ids = [1, 5, 9, 13, 17]
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), str(tmp_path / "sft/adapter"))
    with torch.no_grad():
        want = tuned(input_ids=torch.tensor([ids])).logits
    first = FirstLogits(ids)
    result = train(cfg_for(tiny_llama, tmp_path / "grpo", **{"rl.init_from": str(tmp_path / "sft"),
                                                              "training.max_steps": 1}), callbacks=[first])
    torch.testing.assert_close(first.logits, want, rtol=1e-5, atol=1e-5)
    # the SFT adapter's shape, not the lora section's, is what trained on
    assert json.loads((result.run_dir / "run.json").read_text())["init_from"] == str(tmp_path / "sft")


def test_init_from_refuses_a_run_on_another_base(tiny_models, tmp_path):
    sft_dir = tmp_path / "sft"
    train(config_mod.load(None, values={"data.train_file": str(MEDICAL_O1_SAMPLE), "output_dir": str(sft_dir),
                                        "model.name": str(tiny_models("mistral")), "model.max_length": 192,
                                        "data.overlong": "truncate", "data.limit": 8, "training.max_steps": 1}))
    with pytest.raises(ConfigError, match="was trained on .*mistral.*, not model.name"):
        train(cfg_for(tiny_models("llama"), tmp_path / "grpo", **{"rl.init_from": str(sft_dir)}))


KILL_AFTER_FIRST_SAVE = VOWELS + """
import os, signal, sys
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Kill(TrainerCallback):  # after medtune's own on_save: checkpoint-2 is complete when it fires
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

train(config.load(sys.argv[1]), callbacks=[Kill()])
"""


def test_sigkill_then_resume_samples_and_trains_the_same_curve(tiny_llama, tmp_path):
    settings = {"training.save_steps": 2, "rl.temperature": 1.0}
    killed, recipe = tmp_path / "killed", tmp_path / "recipe.yaml"
    cfg_for(tiny_llama, killed, **settings).save(recipe)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SAVE, str(recipe)], capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert [step for step, _ in RunDir(killed).list_checkpoints()] == [2]
    resumed = train(config_mod.load(recipe), resume=True)
    straight = train(cfg_for(tiny_llama, tmp_path / "straight", **settings))
    assert resumed.global_step == straight.global_step == 4

    def curve(run):
        keys = ("step", "train_loss", "reward", "reward_format", "reward_mcq", "reward_length", "completion_length")
        return [tuple(r.get(k) for k in keys) for r in rows(run) if "train_loss" in r]

    got, want = curve(killed), curve(tmp_path / "straight")
    assert [r[0] for r in got] == [1, 2, 3, 4]
    for a, b in zip(got, want):
        assert a[0] == b[0] and a[1:] == pytest.approx(b[1:], abs=1e-5)  # the same completions, the same rewards
    for name, value in adapter(tmp_path / "straight").items():
        torch.testing.assert_close(adapter(killed)[name], value, rtol=1e-4, atol=1e-6)


def test_judge_reward_asks_the_endpoint_and_caches(tiny_llama, tmp_path):
    verdict = json.dumps({c: {"score": 4, "rationale": "ok"} for c in CRITERIA})
    with ScriptedEndpoint([(200, {}, verdict)]) as stub:
        result = train(cfg_for(tiny_llama, tmp_path / "run", **{
            "data.train_file": str(RL_OPEN), "rl.rewards": {"judge": 1.0}, "training.max_steps": 1,
            "eval.judge_url": stub.url, "data.split": "1,0"}))
    logged = [r for r in rows(result.run_dir) if "train_loss" in r]
    assert logged[0]["reward_judge"] == pytest.approx(0.75)  # a mean score of 4 of 5, scaled to [0, 1]
    assert stub.posts == 4  # one prompt, four completions
    assert len((result.run_dir / "judge_cache.jsonl").read_text().splitlines()) == 4


def test_batches_that_split_a_group_are_refused_before_loading(tiny_llama, tmp_path):
    with pytest.raises(ConfigError, match="must be a multiple of it: e.g. training.batch_size=4"):
        train(cfg_for(tiny_llama, tmp_path / "run", **{"training.batch_size": 3}))
    assert not (tmp_path / "run").exists()


def test_sft_data_under_grpo_names_the_record(tiny_llama, tmp_path):
    with pytest.raises(DataError, match=r"medical_o1_sample.jsonl:\d+: no reference answer"):
        train(cfg_for(tiny_llama, tmp_path / "run", **{"data.train_file": str(MEDICAL_O1_SAMPLE),
                                                       "data.limit": 8, "data.overlong": "truncate"}))


def test_a_reward_that_raises_stops_with_its_name(tiny_llama, tmp_path, monkeypatch):
    import types

    module = types.ModuleType("grpo_bad_rewards")
    module.boom = lambda **kw: [1 / 0 for _ in kw["completions"]]
    monkeypatch.setitem(sys.modules, "grpo_bad_rewards", module)
    with pytest.raises(MedtuneError, match="reward grpo_bad_rewards:boom failed: ZeroDivisionError"):
        train(cfg_for(tiny_llama, tmp_path / "run", **{"rl.rewards": {"grpo_bad_rewards:boom": 1.0}}))
    assert json.loads((tmp_path / "run" / "run.json").read_text())["status"] == "failed"


def test_the_other_verbs_take_a_grpo_run_unchanged(tiny_llama, tmp_path):
    from medtune.cli import main
    from medtune.inference.engine import Engine, SamplingParams

    run = train(cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 2})).run_dir
    engine = Engine.load(run=str(run))
    gen = engine.generate([[{"role": "user", "content": "Which vitamin prevents scurvy?"}]],
                          SamplingParams(max_tokens=4, temperature=0.0))[0]
    assert len(gen.token_ids) == 4
    assert main(["merge", "--run", str(run), "--out", str(tmp_path / "merged")]) == 0  # checks logits itself
    assert main(["eval", "--run", str(run), "--task", str(RL_MCQ), "--limit", "4", "--mode", "loglik"]) == 0
    results = json.loads((run / "eval" / "results.json").read_text())
    task = next(iter(next(iter(results["systems"].values()))["tasks"].values()))
    assert task["kind"] == "mcq"


TWO_RANKS = VOWELS + """
import os, sys, torch
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Weights(TrainerCallback):  # each rank's own copy of the adapter, to compare across ranks
    def on_train_end(self, args, state, control, model=None, **kwargs):
        named = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(named, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))

train(config.load(sys.argv[1]), callbacks=[Weights()])
"""


def test_two_processes_sample_a_group_between_them_and_agree(tiny_llama, tmp_path):
    """torchrun (gloo on the CPU), as `medtune train --nproc 2` starts it: a group of 4 completions is split over the
    ranks (2 each), they end with one adapter, and rank 0 alone writes the run."""
    script, recipe = tmp_path / "ranks.py", tmp_path / "two.yaml"
    script.write_text(TWO_RANKS)
    cfg_for(tiny_llama, tmp_path / "two", **{"training.batch_size": 2, "training.max_steps": 2}).save(recipe)
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                           str(script), str(recipe), str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    assert [r["step"] for r in rows(tmp_path / "two") if "train_loss" in r] == [1, 2]
    info = json.loads((tmp_path / "two" / "run.json").read_text())
    assert info["status"] == "completed" and "DDP" in info["parallel"]


def test_full_fine_tuning_under_grpo_moves_the_weights(tiny_llama, tmp_path):
    from safetensors.torch import load_file as load

    result = train(cfg_for(tiny_llama, tmp_path / "run", **{"lora.method": "full", "training.max_steps": 2,
                                                            "training.learning_rate": 1e-3}))
    weights = result.run_dir / "model"
    assert result.weights_dir == weights and (weights / "config.json").is_file()
    before = load(str(Path(tiny_llama) / "model.safetensors"))
    after = load(str(next(weights.glob("*.safetensors"))))
    assert any(not torch.equal(before[k], after[k]) for k in before if k in after)


def test_early_stopping_keeps_the_best_validation_reward(tiny_llama, tmp_path):
    from transformers import TrainerCallback as Callback

    class Rewards(Callback):  # the validation rewards that early stopping saw, by step
        seen = {}

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            Rewards.seen[state.global_step] = metrics["eval_reward"]

    result = train(cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 8, "training.eval_steps": 1,
                                                            "training.early_stopping_patience": 1}),
                   callbacks=[Rewards()])
    info = json.loads((result.run_dir / "run.json").read_text())
    best_step = max(Rewards.seen, key=lambda s: (Rewards.seen[s], -s))
    assert info["best"] == {"step": best_step, "val_reward": pytest.approx(Rewards.seen[best_step])}
    if result.status == "early_stopped":  # a worse reward after the best one stopped it, and its adapter is kept
        assert info["weights_from_best"] and Rewards.seen[result.global_step] <= Rewards.seen[best_step]
        saved = adapter(result.run_dir)
        kept = load_file(str(result.run_dir / "checkpoints" / f"checkpoint-{best_step}" / "adapter_model.safetensors"))
        assert all(torch.equal(saved[k], kept[k]) for k in saved)
