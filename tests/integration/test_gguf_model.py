"""model.name: smollm2-135m-instruct (the built-in GGUF model) works where any model name does: the tokenizer and
model loaders, `medtune train --dry-run`, inference and eval's --compare-model, all on the one folder converted
per session."""

from pathlib import Path

from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune import config as config_mod
from medtune.cli import main
from medtune.models import gguf


def builtin_cfg(smollm2, **values):
    return config_mod.load(None, values={"model.name": gguf.BUILTIN, "model.gguf_cache": str(smollm2.parent),
                                         **values})


def test_the_tokenizer_loader_sees_the_converted_folder(smollm2, capsys):
    from medtune.models.load import load_tokenizer

    tok = load_tokenizer(builtin_cfg(smollm2).model)
    assert Path(tok.name_or_path) == smollm2 and tok.pad_token == tok.eos_token == "<|im_end|>"
    assert "converting" not in capsys.readouterr().err  # the session's conversion is reused


def test_train_dry_run_on_the_builtin_model(smollm2, tmp_path, capsys):
    recipe = tmp_path / "recipe.yaml"
    builtin_cfg(smollm2, **{"data.train_file": str(SAMPLE), "data.limit": 20, "model.max_length": 256,
                            "data.overlong": "truncate", "output_dir": str(tmp_path / "run")}).save(recipe)
    assert main(["train", str(recipe), "training.max_steps=3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"name: {gguf.BUILTIN}" in out and "plan: 3 steps" in out and "dry run: nothing trained" in out
    assert "trainable " in out and not (tmp_path / "run").exists()


def test_inference_on_the_builtin_model(smollm2):
    from medtune.inference.engine import Engine
    from medtune.inference.params import SamplingParams

    engine = Engine.load(config=builtin_cfg(smollm2), device="cpu")
    assert engine.name == gguf.BUILTIN and engine.context_length == 8192
    assert engine.eos_ids == {engine.tokenizer.convert_tokens_to_ids("<|im_end|>")}
    [out] = engine.generate([[{"role": "user", "content": "What is the capital of France?"}]],
                            SamplingParams(max_tokens=16))
    assert "Paris" in out.text and out.stats.generated_tokens > 0


def test_eval_compares_against_the_builtin_model_named_like_any_other(smollm2, tiny_llama, tmp_path):
    import json

    medqa = Path(__file__).resolve().parents[2] / "src" / "medtune" / "assets" / "medqa_sample.jsonl"
    argv = ["eval", "--model", str(tiny_llama), "--task", str(medqa), "--limit", "2", "--compare-model", gguf.BUILTIN,
            "--out", str(tmp_path / "eval"), f"model.gguf_cache={smollm2.parent}"]
    assert main(argv) == 0
    systems = json.loads((tmp_path / "eval" / "results.json").read_text())["systems"]
    assert systems["base"]["model"] == gguf.BUILTIN and systems["tuned"]["model"] == str(tiny_llama)
    assert systems["base"]["tasks"]["medqa_sample"]["metrics"]["items"] == 2
