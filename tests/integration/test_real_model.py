"""A short LoRA run on the real SmolLM2-135M-Instruct (the built-in model, by its name): the loss falls and ends
below where the base model stood, the saved adapter reloads to the trained model's logits, and the tuned model
opens its answer with <think>, which generate shows apart from the answer. Few steps on short records: seconds."""

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, TrainerCallback

from medtune import config as config_mod
from medtune.data.records import Message
from medtune.inference.engine import Engine, SamplingParams
from medtune.models import gguf
from medtune.rundir import RunDir, read_metrics
from medtune.training.run import train

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
RECORDS = ROOT / "src" / "medtune" / "assets" / "medical_tiny.jsonl"
HELD_OUT = ROOT / "src" / "medtune" / "assets" / "medical_o1_heldout.jsonl"


class Capture(TrainerCallback):
    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.model = model


@pytest.fixture(scope="module")
def trained(smollm2, tmp_path_factory):
    """One pass (12 steps) over 12 of the demo's short records; 2 more measure the validation loss (on 2 records,
    6 passes overfit: the training loss fell to 0.2 while the validation loss rose)."""
    capture = Capture()
    cfg = config_mod.load(ROOT / "configs" / "quickstart.yaml", values={
        "model.name": gguf.BUILTIN, "model.gguf_cache": str(smollm2.parent), "model.max_length": 768,
        "output_dir": str(tmp_path_factory.mktemp("real") / "run"), "data.limit": 14, "data.split": "0.86,0.14",
        "training.max_steps": 12, "training.eval_steps": 12, "training.save_steps": 12, "training.logging_steps": 1,
        "training.warmup_ratio": 0.0, "training.lr_scheduler": "constant"})
    result = train(cfg, callbacks=[capture])
    return cfg, result, capture.model


def test_loss_falls_below_where_the_base_model_stood(trained):
    _, result, _ = trained
    rows = read_metrics(RunDir(result.run_dir).metrics)
    losses = [r["train_loss"] for r in rows if r.get("train_loss") is not None]
    assert len(losses) == 12 and sum(losses[-3:]) / 3 < losses[0] - 0.3
    assert result.info["final_val_loss"] < result.info["start_val_loss"]
    assert result.info["architecture"] == "LlamaForCausalLM" and result.info["model"] == gguf.BUILTIN


def test_the_saved_adapter_reloads_to_the_trained_logits(trained, smollm2):
    from peft import PeftModel

    _, result, model = trained
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(smollm2), result.weights_dir)
    ids = torch.tensor([list(range(100, 160))])
    model.eval(), reloaded.eval()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_generate_shows_the_tuned_models_reasoning_apart(trained):
    import json

    cfg, result, _ = trained
    engine = Engine.load(run=str(result.run_dir), config=config_mod.load(RunDir(result.run_dir).config))
    question = json.loads(HELD_OUT.read_text().splitlines()[3])["Question"]  # never trained on
    gen = engine.generate([[Message("user", question)]], SamplingParams(max_tokens=24, repetition_penalty=1.15))[0]
    assert gen.text.lstrip().startswith("<think>") and gen.reasoning and "<think>" not in gen.reasoning
    assert engine.system_prompt == cfg.data.system_prompt  # the prompt it trained with
