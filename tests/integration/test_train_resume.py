"""Resume and early stopping: a run killed with SIGKILL after its second checkpoint and resumed logs the same
losses as an uninterrupted run and ends with the same adapter; early stopping keeps the best adapter."""

import json
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.errors import MedtuneError
from medtune.rundir import RunDir
from medtune.training.run import train

# lora dropout on: the resumed run must restore the RNG, not only weights and optimizer
RESUME = {"data.train_file": str(SAMPLE), "model.max_length": 192, "data.overlong": "truncate", "data.limit": 40,
          "training.batch_size": 2, "training.gradient_accumulation_steps": 2, "training.learning_rate": 5e-3,
          "training.max_steps": 8, "training.save_steps": 2, "training.eval_steps": 2, "training.logging_steps": 1,
          "training.warmup_steps": 2, "lora.dropout": 0.1, "seed": 11}

KILL_AFTER_SECOND_SAVE = """
import os, signal, sys
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Kill(TrainerCallback):  # runs after medtune's own on_save, so checkpoint-4 is complete when it fires
    saves = 0
    def on_save(self, args, state, control, **kwargs):
        Kill.saves += 1
        if Kill.saves == 2:
            os.kill(os.getpid(), signal.SIGKILL)

train(config.load(sys.argv[1]), callbacks=[Kill()])
"""


def cfg_for(model_dir, out, **values):
    return config_mod.load(None, values={**RESUME, "model.name": str(model_dir), "output_dir": str(out), **values})


def curve(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in rows]


def adapter(run_dir):
    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
def test_sigkill_after_second_checkpoint_then_resume_matches_uninterrupted_run(tiny_llama, tmp_path):
    killed = tmp_path / "killed"
    recipe = tmp_path / "recipe.yaml"
    cfg_for(tiny_llama, killed).save(recipe)
    proc = subprocess.run([sys.executable, "-c", KILL_AFTER_SECOND_SAVE, str(recipe)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    run = RunDir(killed)
    assert [step for step, _ in run.list_checkpoints()] == [2, 4]
    assert not (killed / "adapter").exists()
    # a kill in the middle of writing: a half checkpoint in staging, a folder without its trainer state
    (run.staging / "checkpoint-6").mkdir(parents=True)
    (run.staging / "checkpoint-6" / "adapter_model.safetensors").write_bytes(b"half")
    (run.checkpoints / "checkpoint-6").mkdir()
    assert run.latest_checkpoint().name == "checkpoint-4"
    with pytest.raises(MedtuneError, match="already holds a run"):
        train(config_mod.load(recipe))

    resumed = train(config_mod.load(recipe), resume=True)
    straight = train(cfg_for(tiny_llama, tmp_path / "straight"))
    assert resumed.status == straight.status == "completed" and resumed.global_step == 8
    got, want = curve(killed), curve(tmp_path / "straight")
    assert [s for s, _, _ in got] == [s for s, _, _ in want] == list(range(0, 9))  # step 0: the base; none twice
    for (step, loss, val), (_, loss_w, val_w) in zip(got, want):
        assert loss == pytest.approx(loss_w, abs=1e-5), f"train loss differs at step {step}"
        assert (val is None) == (val_w is None) and (val is None or val == pytest.approx(val_w, abs=1e-5))
    a, b = adapter(killed), adapter(tmp_path / "straight")
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    info = json.loads((killed / "run.json").read_text())
    assert info["resumed_from"] == [str(run.checkpoints / "checkpoint-4")]
    assert not run.staging.exists()


@pytest.mark.slow
def test_early_stopping_stops_and_keeps_the_best_adapter(tiny_llama, tmp_path, capsys):
    # a learning rate far too high: validation loss soon stops improving
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{
        "training.max_steps": 60, "training.learning_rate": 0.3, "training.lr_scheduler": "constant",
        "training.early_stopping_patience": 2, "training.save_steps": None, "training.save_total_limit": 1,
        "lora.dropout": 0.0})
    result = train(cfg)
    assert result.status == "early_stopped" and result.global_step < 60
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    best = info["best"]
    vals = [(s, v) for s, _, v in curve(tmp_path / "run") if v is not None]
    assert best["val_loss"] == min(v for _, v in vals) and (best["step"], best["val_loss"]) in vals
    assert [s for s, _ in vals][-3] == best["step"]  # stopped after exactly `patience` evaluations without progress
    kept = RunDir(tmp_path / "run").list_checkpoints()
    assert best["step"] in [s for s, _ in kept] and kept[-1][0] == result.global_step  # best survives the limit
    best_ckpt = load_file(str(tmp_path / "run" / "checkpoints" / f"checkpoint-{best['step']}" /
                               "adapter_model.safetensors"))
    final = adapter(tmp_path / "run")
    assert all(torch.equal(final[k], best_ckpt[k]) for k in final) and info["weights_from_best"]
    assert f"best validation loss {best['val_loss']:.4f} at step {best['step']}" in capsys.readouterr().out
    stopped = rf"stopped early at step {result.global_step} \(best step {best['step']}\)"
    with pytest.raises(MedtuneError, match=stopped):
        train(cfg, resume=True)  # it would only stop again
    # without patience but the same max_steps or fewer there is nothing after the stop: the best adapter stays
    shorter = cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 6})
    with pytest.raises(MedtuneError, match=rf"stopped early at step {result.global_step} and training.max_steps"):
        train(shorter, resume=True)
    assert all(torch.equal(adapter(tmp_path / "run")[k], best_ckpt[k]) for k in final)


@pytest.mark.slow
def test_resuming_a_finished_run_trains_nothing_and_a_killed_last_step_is_completed(tiny_llama, tmp_path):
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 3, "training.save_steps": 3})
    train(cfg)
    before = adapter(tmp_path / "run")
    with pytest.raises(MedtuneError, match="finished at step 3 of 3: nothing to resume; raise training.max_steps"):
        train(cfg, resume=True)
    # killed after its last checkpoint, before adapter/ was written: resume writes it from the checkpoint
    shutil.rmtree(tmp_path / "run" / "adapter")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**info, "status": "running"}))
    result = train(cfg, resume=True)
    assert result.status == "completed" and result.global_step == 3
    after = adapter(tmp_path / "run")
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert [s for s, _, _ in curve(tmp_path / "run")] == [0, 1, 2, 3]  # no extra step was trained or logged
    assert not (tmp_path / "run" / "checkpoints" / "checkpoint-4").exists()


def test_a_fresh_start_does_not_append_to_an_unfinished_start_s_metrics(tiny_llama, tmp_path):
    run = tmp_path / "run"
    run.mkdir()  # an earlier start killed before its first checkpoint: run.json (written first), then metrics
    (run / "run.json").write_text('{"status": "running"}\n')
    (run / "metrics.jsonl").write_text('{"step": 1, "train_loss": 9.0}\n{"step": 2, "train_loss": 9.0}\n')
    train(cfg_for(tiny_llama, run, **{"training.max_steps": 2}))
    assert [s for s, _, _ in curve(run)] == [0, 1, 2] and 9.0 not in [loss for _, loss, _ in curve(run)]


def _run_with_checkpoints(tiny_llama, out):
    """A finished 8-step run, then cut back to look as if it had been killed after checkpoint-4."""
    train(cfg_for(tiny_llama, out, **{"lora.dropout": 0.0}))
    run = RunDir(out)
    for step, path in run.list_checkpoints():
        if step > 4:
            shutil.rmtree(path)
    shutil.rmtree(out / "adapter")
    info = json.loads(run.run_json.read_text())
    run.run_json.write_text(json.dumps({**info, "status": "interrupted"}))
    return run


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["optimizer.pt", "scheduler.pt", "rng_state.pth"])
def test_resume_from_a_checkpoint_missing_its_state_is_refused_or_flagged(tiny_llama, tmp_path, missing, capsys):
    run = _run_with_checkpoints(tiny_llama, tmp_path / "run")
    (run.checkpoints / "checkpoint-4" / missing).unlink()
    with pytest.raises(MedtuneError) as err:
        train(cfg_for(tiny_llama, run.root, **{"lora.dropout": 0.0}), resume=True)
    assert missing in str(err.value) and "--allow-inexact-resume" in str(err.value)
    assert "\n" not in str(err.value)
    result = train(cfg_for(tiny_llama, run.root, **{"lora.dropout": 0.0}), resume=True, inexact_resume=True)
    assert result.status == "completed" and result.global_step == 8
    info = json.loads(run.run_json.read_text())
    assert info["inexact_resume"] == [{"checkpoint": str(run.checkpoints / "checkpoint-4"), "missing": [missing]}]
    assert f"not an exact resume: checkpoint-4 has no {missing}" in capsys.readouterr().out


@pytest.mark.slow
def test_resume_says_which_checkpoint_it_skipped_and_why(tiny_llama, tmp_path, capsys):
    run = _run_with_checkpoints(tiny_llama, tmp_path / "run")
    (run.checkpoints / "checkpoint-6").mkdir()  # a folder left without its trainer state
    (run.checkpoints / "checkpoint-6" / "adapter_model.safetensors").write_bytes(b"half")
    train(cfg_for(tiny_llama, run.root, **{"lora.dropout": 0.0}), resume=True)
    out = capsys.readouterr().out
    assert "note: checkpoint-6 is not complete (no trainer_state.json): resuming from checkpoint-4" in out
