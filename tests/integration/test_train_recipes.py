"""Every recipe in configs/ passes --dry-run with its model swapped for a tiny local one of the same family and
its data for the real medical-o1 sample; the recipes hold the settings their workflows are known by; the
quickstart recipe of the README really trains."""

from pathlib import Path

import pytest

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from fixture_data import RL_MCQ
from medtune import config as config_mod
from medtune.cli import main

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs").glob("*.yaml"))


def family(model_name: str) -> str:
    name = model_name.lower()
    return "phi3" if "phi" in name else "mistral" if "mistral" in name else "llama"


def test_the_known_workflows_are_all_there():
    assert {p.stem for p in RECIPES} >= {
        "quickstart", "phi4-mini-reasoning-lora", "phi3-mini-medical", "mistral-7b-medical",
        "r1-distill-llama-8b-qlora", "phi4-mini-instruct-safety", "phi3-mini-r8-top8"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_run_on_a_tiny_model(recipe, tiny_models, tmp_path, capsys):
    cfg = config_mod.load(recipe)
    grpo = cfg.training.stage == "grpo"
    # the tiny tokenizer makes ~3x more tokens than the real ones: cut, rather than drop, what exceeds max_length;
    # a GRPO recipe reads verifiable problems, and starts afresh (its SFT run is not here)
    data = [f"data.train_file={RL_MCQ}", "rl.init_from=null"] if grpo else [f"data.train_file={SAMPLE}"]
    argv = ["train", str(recipe), f"model.name={tiny_models(family(cfg.model.name))}", f"output_dir={tmp_path / 'run'}",
            *data, "data.hub_config=null", "data.overlong=truncate", "--dry-run"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "# resolved config" in out and "# would train" in out and "trainable " in out
    if grpo:
        assert "rewards: " in out and "grpo: " in out and " train / " in out and " valid prompts " in out
    if cfg.rl.use_vllm:  # planned here, on a machine without a GPU: a note, not a refusal
        assert "note: not on this machine: rl.use_vllm samples with vLLM on a CUDA GPU" in out
    assert f"method: {cfg.method}" in out and not (tmp_path / "run").exists()


def test_recipes_say_what_their_workflows_are_known_by():
    r1 = config_mod.load(ROOT / "configs" / "r1-distill-llama-8b-qlora.yaml")
    assert (r1.method, r1.lora.r, r1.lora.alpha, r1.lora.dropout, r1.data.template) == ("qlora", 16, 16, 0.0, "r1-cot")
    assert set(r1.lora.target_modules) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert (r1.training.batch_size, r1.training.gradient_accumulation_steps, r1.model.max_length) == (1, 4, 2048)
    assert r1.training.gradient_checkpointing and r1.data.limit == 500
    small = config_mod.load(ROOT / "configs" / "phi3-mini-r8-top8.yaml")
    assert (small.lora.r, small.lora.dropout, small.lora.num_layers) == (8, 0.2, 8)
    assert (small.training.optimizer, small.training.learning_rate, small.training.max_steps) == ("adam", 5e-6, 500)
    assert (small.training.eval_steps, small.training.save_steps, small.data.split) == (100, 100, "0.7,0.2,0.1")
    assert config_mod.load(ROOT / "configs" / "phi4-mini-reasoning-lora.yaml").training.max_steps == 100
    phi3, mistral = (config_mod.load(ROOT / "configs" / f"{n}-medical.yaml") for n in ("phi3-mini", "mistral-7b"))
    a, b = phi3.to_dict(), mistral.to_dict()
    for d in (a, b):
        d.pop("output_dir"), d["model"].pop("name")
    assert a == b  # the comparison differs only in the model
    quick = config_mod.load(ROOT / "configs" / "quickstart-grpo.yaml")
    assert (quick.training.stage, quick.rl.init_from) == ("grpo", "runs/quickstart")
    assert set(quick.rl.rewards) == {"mcq", "format", "length"}  # the CPU recipe: MCQ + format + length
    gpu = config_mod.load(ROOT / "configs" / "phi4-mini-reasoning-grpo.yaml")
    assert gpu.rl.use_vllm and gpu.rl.init_from == "runs/phi4-mini-reasoning-lora"
    assert gpu.model.name == config_mod.load(ROOT / "configs" / "phi4-mini-reasoning-lora.yaml").model.name
    safety = config_mod.load(ROOT / "configs" / "phi4-mini-instruct-safety.yaml")
    assert safety.seed == 816 and safety.training.early_stopping_patience == 3
    assert safety.method == "qlora"  # its workflow: 4-bit, "an NVIDIA GPU with at least 6 GB"
    assert "medical assistant" in safety.data.system_prompt


@pytest.mark.slow
def test_quickstart_trains_from_the_repository_root(tiny_llama, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the README runs it from there: its data path is relative to the checkout
    argv = ["train", "configs/quickstart.yaml", f"model.name={tiny_llama}", f"output_dir={tmp_path / 'run'}",
            "training.max_steps=4", "training.eval_steps=2", "training.save_steps=2"]
    assert main(argv) == 0
    assert "step 4/4" in capsys.readouterr().out
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
