"""training.backend mlx on mlx's CPU backend, tiny Llama: the loss falls; the run directory is the torch backend's
(metrics.jsonl fields, checkpoints, a PEFT adapter every verb reads, mlx-lm's beside it); the PEFT adapter gives
in torch the logits mlx gives; SIGKILL after a checkpoint then --resume logs the same curve as an uninterrupted
run; the torch and mlx backends reach close validation losses on the same model, data and seed."""

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.training.run import train

mlx_lm = pytest.importorskip("mlx_lm")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

BASE = {"data.train_file": str(SAMPLE), "model.max_length": 160, "data.overlong": "truncate", "data.limit": 40,
        "training.batch_size": 2, "training.gradient_accumulation_steps": 2, "training.learning_rate": 5e-3,
        "training.max_steps": 8, "training.save_steps": 4, "training.eval_steps": 4, "training.logging_steps": 1,
        "training.warmup_steps": 2, "lora.dropout": 0.1, "lora.r": 8, "lora.alpha": 16, "seed": 11,
        "training.backend": "mlx"}

KILL_AFTER_FIRST_SAVE = """
import os, signal, sys
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Kill(TrainerCallback):  # after medtune's own on_save: checkpoint-4 is complete when it fires
    def on_save(self, args, state, control, **kwargs):
        os.kill(os.getpid(), signal.SIGKILL)

train(config.load(sys.argv[1]), callbacks=[Kill()])
"""


def cfg_for(model_dir, out, **values):
    return config_mod.load(None, values={**BASE, "model.name": str(model_dir), "output_dir": str(out), **values})


def rows(run_dir):
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def curve(run_dir):
    return [(r["step"], r.get("train_loss"), r.get("val_loss")) for r in rows(run_dir)]


@pytest.fixture(scope="module")
def mlx_run(tiny_llama, tmp_path_factory):
    out = tmp_path_factory.mktemp("mlx") / "run"
    return train(cfg_for(tiny_llama, out)), out


def test_the_loss_falls_and_the_run_directory_is_the_torch_backends(mlx_run, capsys):
    result, out = mlx_run
    assert result.status == "completed" and result.global_step == 8
    losses = [r["train_loss"] for r in rows(out) if r.get("train_loss") is not None]
    assert len(losses) == 8 and np.mean(losses[-3:]) < np.mean(losses[:3])
    vals = [r["val_loss"] for r in rows(out) if r.get("val_loss") is not None]
    assert len(vals) == 3 and vals[-1] < vals[0]  # before training (eval_on_start), steps 4 and 8
    first_step = next(r for r in rows(out) if r.get("train_loss") is not None)
    assert {"step", "epoch", "train_loss", "lr", "grad_norm", "tokens_per_s", "peak_mem_mb"} <= set(first_step)
    assert (out / "adapter" / "adapter_config.json").is_file()
    assert (out / "adapter" / "mlx" / "adapters.safetensors").is_file()
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-8"]
    assert (out / "checkpoints" / "checkpoint-4" / "optimizer.safetensors").is_file()
    info = json.loads((out / "run.json").read_text())
    assert info["status"] == "completed" and info["backend"] == "mlx"


def test_the_peft_adapter_gives_in_torch_the_logits_mlx_gives(mlx_run, tiny_llama):
    from mlx_lm.utils import load
    from peft import PeftModel

    _, out = mlx_run
    ids = list(range(5, 45))
    model, _ = load(str(tiny_llama), adapter_path=str(out / "adapter" / "mlx"))
    import mlx.core as mx

    mlx_logits = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), out / "adapter").eval()
    with torch.no_grad():
        torch_logits = peft(input_ids=torch.tensor([ids])).logits[0].numpy()
    base = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    with torch.no_grad():
        base_logits = base(input_ids=torch.tensor([ids])).logits[0].numpy()
    assert np.abs(torch_logits - base_logits).max() > 1e-3  # the adapter changes the model ...
    np.testing.assert_allclose(torch_logits, mlx_logits, atol=2e-4, rtol=1e-4)  # ... the same way in both


def test_sigkill_after_a_checkpoint_then_resume_logs_the_same_curve(mlx_run, tiny_llama, tmp_path):
    _, whole = mlx_run
    killed, recipe = tmp_path / "killed", tmp_path / "recipe.yaml"
    cfg_for(tiny_llama, killed).save(recipe)
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SAVE, str(recipe)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    assert (killed / "checkpoints" / "checkpoint-4").is_dir() and not (killed / "adapter").exists()
    result = train(cfg_for(tiny_llama, killed), resume=True)
    assert result.status == "completed"
    resumed = {(s, round(t, 5) if t else t, round(v, 5) if v else v) for s, t, v in curve(killed) if s > 4}
    expected = {(s, round(t, 5) if t else t, round(v, 5) if v else v) for s, t, v in curve(whole) if s > 4}
    assert resumed == expected


def test_torch_and_mlx_reach_close_validation_losses(mlx_run, tiny_llama, tmp_path, capsys):
    _, out = mlx_run
    torch_out = tmp_path / "torch"
    capsys.readouterr()
    train(cfg_for(tiny_llama, torch_out, **{"training.backend": "auto"}))  # auto on Linux: torch, and it says why
    assert "backend: torch (auto: not Apple silicon)" in capsys.readouterr().out
    mlx_val = [r["val_loss"] for r in rows(out) if r.get("val_loss") is not None]
    torch_val = [r["val_loss"] for r in rows(torch_out) if r.get("val_loss") is not None]
    # the same model, data, order of examples is not the same (each backend shuffles its own way) and dropout draws
    # differ: close, not equal
    print(f"validation losses: torch {torch_val}, mlx {mlx_val}")
    assert mlx_val[0] == pytest.approx(torch_val[0], rel=1e-4)  # before training: the same model, the same masks
    assert abs(mlx_val[-1] - torch_val[-1]) / torch_val[-1] < 0.05, (mlx_val, torch_val)


@pytest.mark.parametrize("which", ["mlx run (adapter/mlx)", "torch run (PEFT adapter converted)"])
def test_generate_with_mlx_gives_the_torch_engines_greedy_tokens(mlx_run, tiny_llama, tmp_path, which):
    from medtune.export.mlx import peft_to_mlx
    from medtune.inference.engine import Engine, SamplingParams
    from medtune.inference.mlx_engine import MlxLoader

    run = mlx_run[1]
    if which.startswith("torch"):
        run = tmp_path / "torch"
        train(cfg_for(tiny_llama, run, **{"training.backend": "torch", "training.max_steps": 4}))
    question = [[{"role": "user", "content": "What is the antidote for paracetamol overdose?"}]]
    params = SamplingParams(max_tokens=16, temperature=0.0)
    want = Engine.load(run=str(run)).generate(question, params)[0]
    got = MlxLoader(peft_to_mlx).load(run=str(run)).generate(question, params)[0]
    assert got.token_ids == want.token_ids and got.text == want.text and len(got.token_ids) == 16


def test_the_generate_verb_runs_on_mlx_and_says_so(mlx_run, capsys):
    from medtune.cli import main

    code = main(["generate", "--engine", "mlx", "--run", str(mlx_run[1]), "--prompt", "What causes scurvy?",
                 "--max-tokens", "8"])
    out = capsys.readouterr()
    assert code == 0 and out.out.startswith("Answer:\n") and "generated 8 tokens" in out.err
    assert "This response was generated by AI" in out.out  # the safety layer's disclaimer: the same layer


def test_phi3s_fused_qkv_in_the_top_block_trains_and_reloads_in_torch(tiny_models, tmp_path):
    """The Phi-3 recipe's adapter (q, k, v in the top blocks): the fused qkv_proj, one block of two, checkpointed."""
    import mlx.core as mx
    from mlx_lm.utils import load
    from peft import PeftModel

    phi3, out = tiny_models("phi3"), tmp_path / "phi3"
    result = train(cfg_for(phi3, out, **{"lora.target_modules": ["q_proj", "k_proj", "v_proj"], "lora.num_layers": 1,
                                         "training.max_steps": 2, "training.gradient_checkpointing": True,
                                         "training.optimizer": "adam", "training.lr_scheduler": "constant"}))
    assert result.status == "completed"
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert (config["target_modules"], config["layers_to_transform"]) == (["qkv_proj"], [1])  # the top block of two
    ids = list(range(5, 35))
    model, _ = load(str(phi3), adapter_path=str(out / "adapter" / "mlx"))
    mlx_logits = np.array(model(mx.array([ids]))[0].astype(mx.float32))
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(phi3), out / "adapter").eval()
    with torch.no_grad():
        np.testing.assert_allclose(peft(input_ids=torch.tensor([ids])).logits[0].numpy(), mlx_logits,
                                   atol=2e-4, rtol=1e-4)


def test_eval_scores_multiple_choice_with_mlx_as_with_torch(mlx_run, tmp_path):
    """eval's log-likelihood mode on mlx's logits: the same choices and scores as transformers' (to float noise)."""
    from medtune.cli import main

    data = Path(__file__).resolve().parents[1] / "data" / "eval"
    scores = {}
    for engine in ("transformers", "mlx"):
        out = tmp_path / engine
        assert main(["eval", "--run", str(mlx_run[1]), "--task", "medqa", "--data-dir", str(data), "--limit", "6",
                     "--mode", "loglik", "--engine", engine, "--out", str(out)]) == 0
        items = [json.loads(line) for line in next(out.rglob("items*.jsonl")).read_text().splitlines()]
        scores[engine] = [(r["prediction"], r["scores"]) for r in items]
    for (want, want_scores), (got, got_scores) in zip(scores["transformers"], scores["mlx"]):
        assert got == want and np.allclose(list(got_scores.values()), list(want_scores.values()), atol=1e-3)


def test_early_stopping_keeps_the_best_steps_adapter(tiny_llama, tmp_path):
    """A learning rate that overshoots: validation rises, the run stops after `patience` worse evaluations, and
    adapter/ is the best step's (the same callbacks as the torch backend)."""
    from safetensors.numpy import load_file

    out = tmp_path / "early"
    result = train(cfg_for(tiny_llama, out, **{"training.learning_rate": 0.3, "training.warmup_steps": 0,
                                               "training.max_steps": 12, "training.eval_steps": 1,
                                               "training.save_steps": 1, "training.early_stopping_patience": 2,
                                               "training.save_total_limit": 2}))
    info = json.loads((out / "run.json").read_text())
    assert result.status == "early_stopped" and result.global_step < 12
    best = info["best"]["step"]
    vals = {r["step"]: r["val_loss"] for r in rows(out) if r.get("val_loss") is not None}
    assert vals[best] == min(vals.values()) and result.global_step == best + 2
    kept = load_file(str(out / "checkpoints" / f"checkpoint-{best}" / "adapter_model.safetensors"))
    final = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    assert kept.keys() == final.keys() and all(np.array_equal(kept[k], final[k]) for k in kept)
