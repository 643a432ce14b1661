"""Two training processes on the CPU (torchrun, gloo), as `medtune train --nproc 2` starts them:

- the loss curve equals one process with twice the gradient accumulation (the same sequences make each step);
- both ranks end with the same adapter, and one run directory holds one metrics line per step;
- a launcher killed with SIGKILL after the second checkpoint takes its ranks with it, and `--resume` on two
  processes (through accelerate launch and a ready config) continues the same curve to the same adapter;
- early stopping stops both ranks.

LoRA dropout is off: each rank draws its own dropout masks, so with it only the expectation would match.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.rundir import RunDir
from medtune.training.run import train

VALUES = {"data.train_file": str(SAMPLE), "model.max_length": 160, "data.overlong": "truncate", "data.limit": 24,
          "training.batch_size": 2, "training.gradient_accumulation_steps": 1, "training.learning_rate": 5e-3,
          "training.max_steps": 6, "training.save_steps": 2, "training.eval_steps": 2, "training.logging_steps": 1,
          "training.warmup_steps": 2, "lora.dropout": 0.0, "seed": 5}
TOLERANCE = 1e-5  # float32 sums reduced across ranks in another order than one process adds them

RANKS = """
import os, signal, sys, torch
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Weights(TrainerCallback):  # each rank's own copy of the adapter, to compare across ranks
    def on_train_end(self, args, state, control, model=None, **kwargs):
        named = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
        torch.save(named, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.pt"))

class KillLauncher(TrainerCallback):  # after medtune's on_save: checkpoint-4 has its final name on every rank
    saves = 0
    def on_save(self, args, state, control, **kwargs):
        KillLauncher.saves += 1
        if KillLauncher.saves == 2 and os.environ["RANK"] == "0":
            os.kill(os.getppid(), signal.SIGKILL)  # torchrun itself: its ranks must not train on

train(config.load(sys.argv[1]), callbacks=[Weights(), *([KillLauncher()] if sys.argv[3] == "kill" else [])])
"""


def torchrun(script: Path, recipe: Path, out: Path, mode: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script),
           str(recipe), str(out), mode]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def curve(run_dir: Path) -> list[tuple]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in rows]


def same_curve(got: list[tuple], want: list[tuple]) -> None:
    assert [s for s, _, _ in got] == [s for s, _, _ in want] == list(range(0, 7))  # step 0: the base; none twice
    for (step, loss, val), (_, loss_w, val_w) in zip(got, want):
        assert loss == pytest.approx(loss_w, abs=TOLERANCE), f"train loss differs at step {step}"
        assert (val is None) == (val_w is None) and (val is None or val == pytest.approx(val_w, abs=TOLERANCE))


def adapter(run_dir: Path) -> dict:
    return load_file(str(run_dir / "adapter" / "adapter_model.safetensors"))


@pytest.fixture(scope="module")
def runs(tiny_llama, tmp_path_factory):
    """One process with accumulation 2, and two processes with accumulation 1, on the same data and seed."""
    root = tmp_path_factory.mktemp("ddp")
    single = root / "single"
    train(config_mod.load(None, values={**VALUES, "model.name": str(tiny_llama), "output_dir": str(single),
                                        "training.gradient_accumulation_steps": 2}))
    script = root / "ranks.py"
    script.write_text(RANKS)
    recipe = root / "two.yaml"
    config_mod.load(None, values={**VALUES, "model.name": str(tiny_llama), "output_dir": str(root / "two")}).save(
        recipe)
    done = torchrun(script, recipe, root, "straight")
    assert done.returncode == 0, done.stderr[-3000:]
    return {"root": root, "single": single, "two": root / "two", "script": script, "recipe": recipe}


@pytest.mark.slow
def test_two_processes_follow_the_curve_of_one_with_twice_the_accumulation(runs):
    same_curve(curve(runs["two"]), curve(runs["single"]))
    a, b = adapter(runs["two"]), adapter(runs["single"])
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    info = json.loads((runs["two"] / "run.json").read_text())
    assert info["status"] == "completed" and info["global_step"] == 6


@pytest.mark.slow
def test_both_ranks_end_with_the_same_adapter_and_rank_0_alone_writes(runs):
    rank0, rank1 = (torch.load(runs["root"] / f"rank{r}.pt") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and all(torch.equal(rank0[k], rank1[k]) for k in rank0)
    saved = adapter(runs["two"])
    assert all(torch.equal(saved[k.replace(".default", "")], v) for k, v in rank0.items())
    for _, folder in RunDir(runs["two"]).list_checkpoints():  # each rank's RNG state, for an exact resume
        assert {p.name for p in folder.glob("rng_state_*.pth")} == {"rng_state_0.pth", "rng_state_1.pth"}
    assert not RunDir(runs["two"]).staging.exists()


@pytest.mark.slow
def test_launcher_killed_after_second_checkpoint_then_resume_continues_the_curve(runs, tmp_path):
    """Killed under torchrun, resumed under `accelerate launch` with a ready config (--accelerate-config): on a CPU
    accelerate runs the FSDP config as data parallel, says so, and the curve goes on as if never stopped."""
    recipe = tmp_path / "killed.yaml"
    cfg = config_mod.load(runs["recipe"], values={"output_dir": str(tmp_path / "killed")})
    cfg.save(recipe)
    done = torchrun(runs["script"], recipe, tmp_path, "kill")
    assert done.returncode != 0 and not (tmp_path / "killed" / "adapter").exists()
    assert [s for s, _ in RunDir(tmp_path / "killed").list_checkpoints()] == [2, 4]
    config = Path(__file__).resolve().parents[2] / "configs" / "accelerate" / "fsdp2-lora.yaml"
    resumed = subprocess.run([sys.executable, "-m", "medtune", "train", str(recipe), "--accelerate-config",
                              str(config), "--nproc", "2", "--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "x 2 processes (= 4 sequences per step)" in resumed.stdout
    assert "parallel: DDP (CPU, gloo) on 2 processes" in resumed.stdout
    assert "asks for fsdp, but accelerate runs DDP (CPU, gloo) here" in resumed.stdout
    same_curve(curve(tmp_path / "killed"), curve(runs["two"]))
    a, b = adapter(tmp_path / "killed"), adapter(runs["two"])
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    info = json.loads((tmp_path / "killed" / "run.json").read_text())
    assert info["resumed_from"] == [str(RunDir(tmp_path / "killed").checkpoints / "checkpoint-4")]


@pytest.mark.slow
def test_early_stopping_stops_every_rank_and_keeps_the_best_adapter(tiny_llama, tmp_path):
    recipe = tmp_path / "early.yaml"
    config_mod.load(None, values={  # a learning rate far too high: validation loss soon stops improving
        **VALUES, "model.name": str(tiny_llama), "output_dir": str(tmp_path / "early"), "training.max_steps": 40,
        "training.learning_rate": 0.3, "training.lr_scheduler": "constant", "training.early_stopping_patience": 2,
        "training.save_steps": None}).save(recipe)
    done = subprocess.run([sys.executable, "-m", "medtune", "train", str(recipe), "--nproc", "2"],
                          capture_output=True, text=True, timeout=300)  # a rank that went on alone would hang
    assert done.returncode == 0, done.stderr[-3000:]
    info = json.loads((tmp_path / "early" / "run.json").read_text())
    assert info["status"] == "early_stopped" and info["global_step"] < 40
    best = load_file(str(tmp_path / "early" / "checkpoints" / f"checkpoint-{info['best']['step']}" /
                         "adapter_model.safetensors"))
    final = adapter(tmp_path / "early")
    assert info["weights_from_best"] and all(torch.equal(final[k], best[k]) for k in final)

