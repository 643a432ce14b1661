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


def mlx_logits(model_dir, ids, adapter=None):
    import mlx.core as mx
    from mlx_lm.utils import load

    model, _ = load(str(model_dir), adapter_path=str(adapter) if adapter else None)
    return np.array(model(mx.array([ids]))[0].astype(mx.float32))


def torch_logits(model_dir, ids, adapter=None):
    from peft import PeftModel

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    model = (PeftModel.from_pretrained(model, adapter) if adapter else model).eval()
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].numpy()


def test_dora_trains_and_its_peft_adapter_gives_mlxs_logits(tiny_llama, tmp_path):
    """lora.use_dora on mlx: mlx-lm's DoRA layers; the magnitudes train and come out as PEFT's."""
    from safetensors.numpy import load_file

    out = tmp_path / "dora"
    result = train(cfg_for(tiny_llama, out, **{"lora.use_dora": True, "training.max_steps": 4}))
    assert result.status == "completed"
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert config["use_dora"] is True
    assert json.loads((out / "adapter" / "mlx" / "adapter_config.json").read_text())["fine_tune_type"] == "dora"
    weights = load_file(str(out / "adapter" / "adapter_model.safetensors"))
    base = load_file(str(tiny_llama / "model.safetensors"))
    name = "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector"
    assert not np.allclose(weights[name], np.linalg.norm(base["model.layers.0.self_attn.q_proj.weight"], axis=1))
    ids = list(range(5, 45))
    np.testing.assert_allclose(torch_logits(tiny_llama, ids, out / "adapter"),
                               mlx_logits(tiny_llama, ids, out / "adapter" / "mlx"), atol=2e-4, rtol=1e-4)


def test_qlora_trains_adapters_on_a_4_bit_mlx_base(tiny_llama, tmp_path, capsys):
    """lora.method qlora on mlx: the blocks' linear layers in mlx's 4-bit affine form under the adapters; the PEFT
    adapter is the one torch applies to the full-precision base (as a bitsandbytes QLoRA adapter is)."""
    out = tmp_path / "qlora"
    result = train(cfg_for(tiny_llama, out, **{"training.method": "qlora"}))
    assert result.status == "completed" and result.weights_dir.name == "adapter"
    assert "14 block linear layers in 4-bit (mlx affine, group 64" in capsys.readouterr().out
    losses = [r["train_loss"] for r in rows(out) if r.get("train_loss") is not None]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    ids = list(range(5, 45))
    adapted, base = torch_logits(tiny_llama, ids, out / "adapter"), torch_logits(tiny_llama, ids)
    assert np.abs(adapted - base).max() > 1e-3
    # on the quantized base mlx's logits differ from torch's full-precision ones by the quantization error only
    import mlx.core as mx
    import mlx.nn as nn
    from mlx_lm.utils import load

    from medtune.training.mlx_methods import quantize_blocks

    model, _ = load(str(tiny_llama), adapter_path=str(out / "adapter" / "mlx"))
    full_precision = np.array(model(mx.array([ids]))[0])
    np.testing.assert_allclose(full_precision, adapted, atol=2e-4, rtol=1e-4)
    model, _ = load(str(tiny_llama))
    quantize_blocks(model)
    assert any(isinstance(m, nn.QuantizedLinear) for _, m in model.named_modules())


def test_full_fine_tuning_saves_a_model_torch_loads_and_resumes_exactly(tiny_llama, tmp_path):
    """lora.method full on mlx: every weight trains; model/ is a transformers folder with mlx's logits; SIGKILL
    after the first checkpoint then --resume logs the same curve (the optimizer state of every weight kept)."""
    from safetensors.numpy import load_file

    values = {"training.method": "full", "training.learning_rate": 1e-3, "training.max_steps": 4,
              "training.save_steps": 2, "training.eval_steps": 2}
    whole = tmp_path / "whole"
    result = train(cfg_for(tiny_llama, whole, **values))
    assert result.status == "completed" and result.weights_dir.name == "model"
    assert json.loads((whole / "run.json").read_text())["trainable_percent"] == 100.0
    saved, original = load_file(str(whole / "model" / "model.safetensors")), load_file(
        str(tiny_llama / "model.safetensors"))
    for name in ("model.layers.0.self_attn.q_proj.weight", "model.embed_tokens.weight"):
        assert not np.array_equal(saved[name], original[name])
    ids = list(range(5, 45))
    np.testing.assert_allclose(torch_logits(whole / "model", ids), mlx_logits(whole / "model", ids),
                               atol=2e-4, rtol=1e-4)

    killed, recipe = tmp_path / "killed", tmp_path / "recipe.yaml"
    cfg_for(tiny_llama, killed, **values).save(recipe)
    done = subprocess.run([sys.executable, "-c", KILL_AFTER_FIRST_SAVE, str(recipe)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == -signal.SIGKILL, done.stderr[-2000:]
    train(cfg_for(tiny_llama, killed, **values), resume=True)
    rounded = [(s, round(t, 5) if t else t, round(v, 5) if v else v) for s, t, v in curve(killed) if s > 2]
    assert rounded == [(s, round(t, 5) if t else t, round(v, 5) if v else v) for s, t, v in curve(whole) if s > 2]


def test_several_requests_run_as_one_mlx_batch_with_the_tokens_of_one_at_a_time(mlx_run):
    """eval and the server hand the engine many requests: mlx-lm's BatchGenerator decodes them together (prompts
    of different lengths, greedy and seeded sampling, a stop string), each with the tokens it gets alone."""
    from medtune.inference.engine import SamplingParams
    from medtune.inference.mlx_engine import MlxLoader

    engine = MlxLoader(None).load(run=str(mlx_run[1]))
    questions = ["What is the antidote for paracetamol overdose?", "Why?",
                 "A 60-year-old man has crushing chest pain radiating to the left arm. What is the first test?"]
    unstopped = engine.run([engine.request([{"role": "user", "content": questions[2]}],
                                           SamplingParams(max_tokens=12, temperature=0.0))])[0].text
    params = [SamplingParams(max_tokens=12, temperature=0.0), SamplingParams(max_tokens=7, temperature=0.9, seed=5),
              SamplingParams(max_tokens=12, temperature=0.0, stop=[unstopped[6:8]])]
    def requests():
        return [engine.request([{"role": "user", "content": q}], p) for q, p in zip(questions, params)]
    batched = engine.run(requests())
    alone = [engine.run([r])[0] for r in requests()]
    assert [g.token_ids for g in batched] == [g.token_ids for g in alone]
    assert [g.text for g in batched] == [g.text for g in alone]
    assert [g.stats.batch_size for g in batched] == [3, 3, 3] and alone[0].stats.batch_size == 1
    assert len(batched[1].token_ids) == 7 and batched[2].finish_reason == "stop"
    assert batched[2].text == unstopped[:unstopped.index(unstopped[6:8])]
