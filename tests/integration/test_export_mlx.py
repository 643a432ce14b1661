"""`medtune export --to mlx` / `--from mlx`: mlx-lm opens the exported adapter and gives the logits and greedy tokens
of the PEFT one (Llama, and Phi-3's fused qkv_proj / gate_up_proj), and PEFT -> MLX -> PEFT gives back the same
weights."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from medtune.cli import main

mlx_lm = pytest.importorskip("mlx_lm")
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
IDS = list(range(5, 45))


def perturbed_adapter(model_dir, out, targets, seed=0, dora=False):
    """A PEFT LoRA (or DoRA) adapter whose B is not zero (an untrained one changes nothing) and, for DoRA, whose
    magnitudes are not the base's norms, saved to `out`."""
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                           LoraConfig(r=4, lora_alpha=8, target_modules=targets, task_type="CAUSAL_LM",
                                      use_dora=dora))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
            if "lora_magnitude_vector" in name:
                param.mul_(1 + 0.3 * torch.rand(param.shape, generator=generator))
    model.save_pretrained(out)
    return model


def torch_logits(model):
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([IDS])).logits[0].numpy()


def mlx_greedy(model, tokenizer, n=12):
    return [r.token for r in mlx_lm.stream_generate(model, tokenizer, IDS, max_tokens=n)]


def torch_greedy(model, n=12):
    out = model.generate(torch.tensor([IDS]), attention_mask=torch.ones(1, len(IDS), dtype=torch.long),
                         max_new_tokens=n, do_sample=False)
    return out[0, len(IDS):].tolist()


@pytest.mark.parametrize("arch, targets", [("llama", ["q_proj", "v_proj", "down_proj"]),
                                           ("phi3", ["qkv_proj", "o_proj", "gate_up_proj"])])
def test_mlx_lm_gives_the_peft_adapters_logits_and_tokens(tiny_models, tmp_path, arch, targets, capsys):
    import mlx.core as mx

    model_dir = tiny_models(arch)
    peft = perturbed_adapter(model_dir, tmp_path / "peft", targets)
    assert main(["export", "--model", str(model_dir), "--adapter", str(tmp_path / "peft"), "--to", "mlx",
                 "--out", str(tmp_path / "mlx")]) == 0
    assert "wrote mlx-lm adapter" in capsys.readouterr().out
    model, tokenizer = mlx_lm.load(str(model_dir), adapter_path=str(tmp_path / "mlx"))
    mlx_logits = np.array(model(mx.array([IDS]))[0])
    assert np.abs(mlx_logits - torch_logits(peft)).max() < 1e-4
    assert np.abs(mlx_logits - torch_logits(AutoModelForCausalLM.from_pretrained(model_dir))).max() > 1e-2
    tokens = mlx_greedy(model, tokenizer)  # mlx-lm stops at an end token; transformers here runs on for 12
    assert tokens and tokens == torch_greedy(peft)[:len(tokens)]


def test_peft_to_mlx_to_peft_gives_back_the_same_weights(tiny_llama, tmp_path, capsys):
    from peft import PeftModel

    peft = perturbed_adapter(tiny_llama, tmp_path / "peft", ["q_proj", "k_proj", "o_proj"], seed=1)
    assert main(["export", "--model", str(tiny_llama), "--adapter", str(tmp_path / "peft"), "--to", "mlx",
                 "--out", str(tmp_path / "mlx")]) == 0
    assert main(["export", "--from", "mlx", str(tmp_path / "mlx"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "back")]) == 0
    first, back = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("peft", "back"))
    assert first.keys() == back.keys() and all(torch.equal(first[k], back[k]) for k in first)
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), tmp_path / "back")
    np.testing.assert_allclose(torch_logits(reloaded), torch_logits(peft), atol=1e-5)


def test_a_dora_adapter_converts_both_ways_with_its_magnitudes(tiny_llama, tmp_path, capsys):
    """PEFT's lora_magnitude_vector is mlx-lm's m (fine_tune_type dora): the same logits in both, and back again."""
    import json

    import mlx.core as mx

    peft = perturbed_adapter(tiny_llama, tmp_path / "peft", ["q_proj", "down_proj"], dora=True)
    assert main(["export", "--model", str(tiny_llama), "--adapter", str(tmp_path / "peft"), "--to", "mlx",
                 "--out", str(tmp_path / "mlx")]) == 0
    assert json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())["fine_tune_type"] == "dora"
    model, _ = mlx_lm.load(str(tiny_llama), adapter_path=str(tmp_path / "mlx"))
    assert np.abs(np.array(model(mx.array([IDS]))[0]) - torch_logits(peft)).max() < 1e-4
    assert main(["export", "--from", "mlx", str(tmp_path / "mlx"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "back")]) == 0
    first, back = (load_file(str(tmp_path / d / "adapter_model.safetensors")) for d in ("peft", "back"))
    assert first.keys() == back.keys() and all(torch.equal(first[k], back[k]) for k in first)
    assert any(k.endswith("lora_magnitude_vector") for k in back)
    assert json.loads((tmp_path / "back" / "adapter_config.json").read_text())["use_dora"] is True


def test_an_mlx_adapter_of_the_top_blocks_only_targets_those_blocks(tiny_llama, tmp_path, capsys):
    """mlx_lm.lora --num-layers N adapts the top N blocks: the PEFT adapter names them (layers_to_transform)."""
    import json

    from peft import PeftModel

    perturbed_adapter(tiny_llama, tmp_path / "peft", ["q_proj"])
    assert main(["export", "--model", str(tiny_llama), "--adapter", str(tmp_path / "peft"), "--to", "mlx",
                 "--out", str(tmp_path / "mlx")]) == 0
    weights = load_file(str(tmp_path / "mlx" / "adapters.safetensors"))
    top = {k: v for k, v in weights.items() if k.startswith("model.layers.1.")}  # as if trained on the top block
    from safetensors.torch import save_file

    save_file(top, str(tmp_path / "mlx" / "adapters.safetensors"))
    config = json.loads((tmp_path / "mlx" / "adapter_config.json").read_text())
    (tmp_path / "mlx" / "adapter_config.json").write_text(json.dumps({**config, "num_layers": 1}))
    assert main(["export", "--from", "mlx", str(tmp_path / "mlx"), "--model", str(tiny_llama),
                 "--out", str(tmp_path / "back")]) == 0
    assert "q_proj in blocks 1-1" in capsys.readouterr().out
    model, tokenizer = mlx_lm.load(str(tiny_llama), adapter_path=str(tmp_path / "mlx"))
    import mlx.core as mx

    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), tmp_path / "back")
    assert np.abs(np.array(model(mx.array([IDS]))[0]) - torch_logits(reloaded)).max() < 1e-4


def test_refusals_are_one_line(tiny_llama, tmp_path, capsys):
    assert main(["export", "--model", str(tiny_llama), "--adapter", str(tmp_path), "--to", "mlx",
                 "--out", str(tmp_path / "x")]) == 2
    assert "not a PEFT adapter" in capsys.readouterr().err
    assert main(["export", "--model", str(tiny_llama), "--out", str(tmp_path / "y")]) == 2
    assert "give --to mlx" in capsys.readouterr().err
