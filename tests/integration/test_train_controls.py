"""Training controls and faults: batch x accumulation invariance, same seed same losses, NaN stop, out-of-memory
advice, tracking without secrets, --dry-run, and the config combinations refused up front."""

import importlib.util
import json
import re
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.cli import main
from medtune.errors import ConfigError, MedtuneError
from medtune.training.faults import TrainingStopped
from medtune.training.run import train

BASE = {"data.train_file": str(SAMPLE), "model.max_length": 192, "data.overlong": "truncate", "data.limit": 40,
        "training.learning_rate": 5e-3, "training.logging_steps": 1, "lora.dropout": 0.0, "seed": 5}


def cfg_for(model_dir, out, **values):
    return config_mod.load(None, values={**BASE, "model.name": str(model_dir), "output_dir": str(out), **values})


def losses(run_dir):
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]
    return [r["train_loss"] for r in rows if "train_loss" in r]


def adapter(run_dir):
    return load_file(str(Path(run_dir) / "adapter" / "adapter_model.safetensors"))


@pytest.mark.slow
@pytest.mark.parametrize("packing", ["padding_free", "none"])
def test_batch_4x1_matches_batch_1x4(tiny_llama, tmp_path, packing):
    """The loss is normalised by the supervised tokens of the whole accumulated batch, so both see one gradient
    (4 sequences concatenated padding-free, or padded, in one micro-batch vs one sequence per micro-batch)."""
    common = {"training.max_steps": 3, "training.packing": packing}
    a = train(cfg_for(tiny_llama, tmp_path / "a", **common, **{"training.batch_size": 4}))
    b = train(cfg_for(tiny_llama, tmp_path / "b", **common, **{"training.batch_size": 1,
                                                               "training.gradient_accumulation_steps": 4}))
    assert losses(a.run_dir) == pytest.approx(losses(b.run_dir), abs=2e-5)
    wa, wb = adapter(a.run_dir), adapter(b.run_dir)
    assert all(torch.allclose(wa[k], wb[k], atol=2e-5) for k in wa)


@pytest.mark.slow
def test_same_config_same_losses_and_auto_layout_is_the_same_step(tiny_llama, tmp_path):
    auto = train(cfg_for(tiny_llama, tmp_path / "a", **{"training.batch_size": 4, "training.max_steps": 3}))
    assert auto.info["packing"] == "per_sequence"  # CPU / sdpa: one sequence per micro-batch
    again = train(cfg_for(tiny_llama, tmp_path / "b", **{"training.batch_size": 4, "training.max_steps": 3}))
    assert losses(again.run_dir) == losses(auto.run_dir)  # same config, same seed: the same numbers
    packed = train(cfg_for(tiny_llama, tmp_path / "c", **{"training.batch_size": 4, "training.max_steps": 3,
                                                          "training.packing": "padding_free"}))
    assert losses(packed.run_dir) == pytest.approx(losses(auto.run_dir), abs=2e-5)


@pytest.mark.slow
def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tiny_llama, tmp_path):
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{"training.learning_rate": 1e30, "training.max_grad_norm": 0,
                                                   "training.lr_scheduler": "constant", "training.max_steps": 6,
                                                   "training.save_steps": 1, "training.batch_size": 2})
    with pytest.raises(TrainingStopped) as caught:
        train(cfg)
    message = str(caught.value)
    step = int(re.search(r"at step (\d+)", message).group(1))
    assert "NaN/infinite" in message and "lower training.learning_rate" in message
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("checkpoint-*"))
    assert checkpoints and f"checkpoint-{step}" not in checkpoints and f"checkpoint-{step - 1}" in message
    assert not (tmp_path / "run" / "adapter").exists()
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["status"] == "failed" and "NaN" in info["error"]  # not left saying "running"
    assert main(["train", "--config", str(tmp_path / "run" / "config.yaml"), "--resume"]) == 2  # NaN again: exit 2


class OutOfMemory(TrainerCallback):
    def on_step_begin(self, args, state, control, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def test_out_of_memory_ends_with_concrete_advice(tiny_llama, tmp_path):
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{"training.batch_size": 8, "training.max_steps": 2})
    with pytest.raises(TrainingStopped) as caught:
        train(cfg, callbacks=[OutOfMemory()])
    message = str(caught.value)
    for tip in ("training.batch_size=4 training.gradient_accumulation_steps=2", "model.max_length=128",
                "training.gradient_checkpointing=true", "lora.method=qlora", "Tried to allocate 20.00 GiB"):
        assert tip in message


# where each tracker leaves its run, under <output_dir>/tracking
TRACKER_FILES = {"tensorboard": "tensorboard/events.out.tfevents.*", "wandb": "wandb/offline-run-*/run-*.wandb",
                 "mlflow": "mlflow.db"}


@pytest.mark.slow
@pytest.mark.parametrize("tracker", list(TRACKER_FILES))
def test_tracking_writes_a_local_run_and_no_secret(tiny_llama, tmp_path, monkeypatch, tracker):
    if importlib.util.find_spec(tracker) is None:
        pytest.skip(f"{tracker} is not installed")
    secret = "sk-medtune-test-secret-0123456789"
    for name in ("HF_TOKEN", "WANDB_API_KEY", "OPENAI_API_KEY", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, secret)
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 2, "training.logging_steps": 1,
                                                   "tracking.report_to": tracker})
    train(cfg)  # wandb offline and mlflow's file store: no account, no network
    assert list((tmp_path / "run" / "tracking").glob(TRACKER_FILES[tracker]))
    if tracker == "mlflow":
        import mlflow

        client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'run' / 'tracking' / 'mlflow.db'}")
        (run,) = client.search_runs([client.get_experiment_by_name("medtune").experiment_id])
        assert len(client.get_metric_history(run.info.run_id, "loss")) == 2  # logging_steps 1, two steps
    for path in (tmp_path / "run").rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"secret written to {path}"


@pytest.mark.parametrize("tracker, missing", [("wandb", ["wandb"]), ("mlflow", ["mlflow"]),
                                              ("mlflow", ["sqlalchemy", "alembic"]), ("tensorboard", ["tensorboard"])])
def test_missing_tracker_package_is_one_clear_error(tiny_llama, tmp_path, monkeypatch, tracker, missing):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    extra = "tracking" if tracker == "tensorboard" else tracker
    with pytest.raises(ConfigError, match=rf"report_to = {tracker} needs the {' and '.join(missing)} package.*"
                                          rf"pip install 'medtune\[{extra}\]'"):
        train(cfg_for(tiny_llama, tmp_path / "run", **{"training.max_steps": 1, "tracking.report_to": tracker}))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_dry_run_prints_the_plan_and_writes_nothing(tiny_models, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    cfg_for(tiny_models("phi3"), tmp_path / "run", **{"lora.target_modules": ["q_proj", "k_proj", "v_proj"],
                                                       "lora.num_layers": 1}).save(recipe)
    assert main(["train", str(recipe), "training.max_steps=7", "--dry-run"]) == 0
    out = capsys.readouterr()
    assert "# resolved config" in out.out and "max_steps: 7" in out.out and "format medical_o1" in out.out
    assert "adapted modules: qkv_proj in block 1 (1 layers)" in out.out and "plan: 7 steps" in out.out
    assert "trainable " in out.out and "dry run: nothing trained" in out.out
    assert "fuses q,k,v into qkv_proj" in out.err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("values, message", [
    ({"training.early_stopping_patience": 2, "training.eval_steps": 5, "training.save_steps": 10},
     "every evaluation must be saved"),
    ({"training.early_stopping_patience": 2, "training.eval_steps": 5, "data.split": "1.0,0"},
     "needs validation examples"),
    ({"lora.target_modules": ["q_proj", "wq"]}, "no layer named 'wq'"),
    ({"model.max_length": 16}, "no training example left after the length policy"),
    ({"training.lr_scheduler": "cosin"}, "'cosin' is not a transformers scheduler; did you mean 'cosine'"),
    ({"training.lr_scheduler": "cosine_with_min_lr", "training.lr_scheduler_kwargs": {"min_lr_ratio": 0.1}},
     "lr_scheduler_kwargs = {'min_lr_ratio': 0.1} for cosine_with_min_lr: "
     ".*unexpected keyword argument 'min_lr_ratio'"),
    ({"training.lr_scheduler": "polynomial", "training.lr_scheduler_kwargs": {"lr_end": 1.0}},
     r"lr_end \(1.0\) must be smaller than initial lr"),  # the run's own learning rate is what it is checked on
    ({"training.batch_size": 0}, "training.batch_size = 0 must be at least 1"),
    ({"training.gradient_accumulation_steps": 0}, "must be at least 1"),
    ({"training.logging_steps": 0}, "training.logging_steps = 0 must be at least 1"),
    ({"training.learning_rate": -1}, "must be above 0"),
    ({"lora.dropout": 1.5}, r"lora.dropout = 1.5 must be in \[0, 1\)"),
    ({"training.eval_steps": 0}, "training.eval_steps = 0 must be at least 1"),
    ({"lora.method": "full", "training.method": "lora"}, "disagree"),
])
def test_refused_before_training(tiny_llama, tmp_path, values, message):
    with pytest.raises(MedtuneError, match=message):
        train(cfg_for(tiny_llama, tmp_path / "run", **values))
    assert not (tmp_path / "run" / "checkpoints").exists()
    info_file = tmp_path / "run" / "run.json"
    assert not info_file.exists() or json.loads(info_file.read_text())["status"] == "failed"


def test_dry_run_shows_the_plan_when_no_record_fits_then_the_length_that_would(tiny_models, tmp_path, capsys):
    """The common 512-token layout on medical-o1 records (here 128 on the tiny tokenizer): every record is too
    long. The dry run still shows the model, the adapted modules (Phi-3's fused mapping) and the audit."""
    recipe = tmp_path / "recipe.yaml"
    cfg_for(tiny_models("phi3"), tmp_path / "run", **{"lora.target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"],
                                                       "data.overlong": "drop", "model.max_length": 128,
                                                       "training.early_stopping_patience": 3}).save(recipe)
    assert main(["train", str(recipe), "--dry-run"]) == 2
    out, err = capsys.readouterr()
    assert "model: " in out and "Phi3ForCausalLM" in out and "adapted modules: o_proj, qkv_proj" in out
    p90 = int(re.search(r"train tokens p50 \d+ p90 (\d+)", out).group(1))
    assert "36 over max_length 128" in out and "kept after length policy: train 0" in out
    assert "fuses q,k,v into qkv_proj" in err
    assert "no training example left after the length policy" in err and f"model.max_length={p90} keeps 90%" in err
    assert len(err.strip().splitlines()) == 2  # the fused-layer warning and the one-line error
    assert not (tmp_path / "run").exists()


def test_dry_run_names_the_attention_kernel_the_run_will_use(tiny_llama, tmp_path, capsys):
    train(cfg_for(tiny_llama, tmp_path / "run", **{"model.attn_implementation": "eager"}), dry_run=True)
    assert "attention eager" in capsys.readouterr().out


def test_dry_run_refuses_what_the_run_would_refuse(tiny_llama, tmp_path, capsys):
    taken = tmp_path / "taken"
    (taken / "adapter").mkdir(parents=True)
    with pytest.raises(MedtuneError, match="already holds a run"):
        train(cfg_for(tiny_llama, taken), dry_run=True)
    assert "# would train" in capsys.readouterr().out  # the plan first, then why the run would stop
    with pytest.raises(MedtuneError, match="nothing to resume|no such checkpoint"):
        train(cfg_for(tiny_llama, tmp_path / "new"), dry_run=True, resume=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(MedtuneError, match="output_dir .*file exists and is not a folder"):
        train(cfg_for(tiny_llama, tmp_path / "file"), dry_run=True)


def test_a_folder_that_is_not_a_run_is_never_written_into(tiny_llama, tmp_path):
    """output_dir naming the user's own folder (a README, a model) is refused before anything is written."""
    own = tmp_path / "project"
    own.mkdir()
    (own / "README.md").write_text("my notes\n")
    (own / "model.safetensors").write_bytes(b"weights")
    for dry_run in (True, False):
        with pytest.raises(MedtuneError, match=r"project holds files that are not a medtune run \(README.md, "
                                                r"model.safetensors\): choose an empty or new output_dir"):
            train(cfg_for(tiny_llama, own, **{"training.max_steps": 1}), dry_run=dry_run)
    assert sorted(p.name for p in own.iterdir()) == ["README.md", "model.safetensors"]
    assert (own / "README.md").read_text() == "my notes\n"


@pytest.mark.slow
def test_a_folder_holding_only_prepares_output_trains(tiny_llama, tmp_path):
    """medtune prepare CONFIG writes <output_dir>/data first; medtune train CONFIG then trains in that folder."""
    out = tmp_path / "run"
    assert main(["prepare", "--data", str(SAMPLE), "--limit", "8", "--out", str(out / "data")]) == 0
    result = train(cfg_for(tiny_llama, out, **{"training.max_steps": 1, "data.limit": 8}))
    assert result.status == "completed" and (out / "run.json").is_file()


def test_resume_flag_leaves_config_paths_and_overrides_where_they_belong(tiny_llama, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    cfg_for(tiny_llama, tmp_path / "run").save(recipe)
    for argv in (["train", str(recipe), "--resume", "training.max_steps=3"], ["train", "--resume", str(recipe)]):
        assert main(argv) == 2
        assert "nothing to resume" in capsys.readouterr().err  # read as the config, not as a checkpoint path


def test_a_prepared_folder_trains_on_its_own_splits(tiny_llama, tmp_path):
    from medtune.training.run import prepare_examples

    assert main(["prepare", "--data", str(SAMPLE), "--limit", "40", "--split", "0.8,0.1,0.1",
                 "--out", str(tmp_path / "prep")]) == 0
    cfg = cfg_for(tiny_llama, tmp_path / "run", **{"data.train_file": str(tmp_path / "prep"), "model.max_length": 4096})
    _, prepared, _, _ = prepare_examples(cfg)
    assert {n: len(r) for n, r in prepared.splits.items()} == {"train": 32, "valid": 4, "test": 4}


def test_common_layout_early_stopping_evaluates_every_tenth_of_the_run():
    from medtune.training.args import plan

    cfg = config_mod.load(None, values={"training.early_stopping_patience": 3, "training.max_steps": 36,
                                        "training.batch_size": 4, "training.gradient_accumulation_steps": 8})
    p = plan(cfg, has_eval=True, n_train=1000)
    assert (p.eval_steps, p.save_steps, p.total_steps, p.packing) == (3, 3, 36, "per_sequence")
    assert (p.micro_batch, p.accumulation) == (1, 32)  # batch 4 x accumulation 8 as 32 single sequences
    flash = plan(cfg, has_eval=True, n_train=1000, varlen_attention=True)
    assert (flash.packing, flash.micro_batch, flash.accumulation) == ("padding_free", 4, 8)
    epochs = config_mod.load(None, values={"training.epochs": 2, "training.batch_size": 4,
                                           "training.gradient_accumulation_steps": 8})
    assert plan(epochs, has_eval=True, n_train=100).total_steps == 8  # 25 batches -> 4 steps (last partial) x 2


def test_resume_without_a_checkpoint_says_so(tiny_llama, tmp_path):
    with pytest.raises(MedtuneError, match="nothing to resume"):
        train(cfg_for(tiny_llama, tmp_path / "run"), resume=True)


def test_a_misspelt_scheduler_argument_leaves_no_run_directory(tiny_llama, tmp_path):
    with pytest.raises(MedtuneError, match="unexpected keyword argument 'min_lr_ratio'"):
        train(cfg_for(tiny_llama, tmp_path / "run", **{"training.lr_scheduler": "cosine_with_min_lr",
                                                       "training.lr_scheduler_kwargs": {"min_lr_ratio": 0.1}}))
    assert not (tmp_path / "run").exists()
