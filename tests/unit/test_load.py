"""Loading: dtype and attention choices, RoPE scaling, 4-bit QLoRA on CPU, pad tokens, clear 'not found' errors."""

from __future__ import annotations

import huggingface_hub.constants
import pytest
import torch
from transformers import AutoTokenizer

from medtune.config import ModelConfig
from medtune.errors import ConfigError, MedtuneError
from medtune.models.load import (
    describe_device,
    load_model,
    load_tokenizer,
    peak_memory_mb,
    resolve_attn_implementation,
    resolve_dtype,
)


def test_dtype_auto_is_fp32_on_cpu_and_explicit_names_win():
    assert resolve_dtype("auto", "cpu") is torch.float32
    assert resolve_dtype("bfloat16", "cpu") is torch.bfloat16
    assert resolve_dtype("float16", "cuda") is torch.float16


@pytest.mark.parametrize("capability, expected", [((8, 0), torch.bfloat16), ((9, 0), torch.bfloat16),
                                                   ((7, 5), torch.float16), ((7, 0), torch.float16)])
def test_dtype_auto_on_cuda_follows_native_bf16_support(monkeypatch, capability, expected):
    # is_bf16_supported() counts emulation and says True on a T4: the choice must not follow it
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
    monkeypatch.setattr(torch.version, "hip", None)
    assert resolve_dtype("auto", "cuda:0") is expected


@pytest.mark.parametrize("device, dtype, flash, expected", [
    ("cuda", torch.bfloat16, True, "flash_attention_2"),
    ("cuda:1", torch.float16, True, "flash_attention_2"),
    ("cuda", torch.float32, True, None),  # flash-attention has no fp32 kernels
    ("cuda", torch.bfloat16, False, None),
    ("cpu", torch.bfloat16, True, None),
])
def test_attn_auto(monkeypatch, device, dtype, flash, expected):
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: (8, 0))  # an A100
    # None = transformers' own default: sdpa, or eager for a model without sdpa
    assert resolve_attn_implementation("auto", dtype, device, flash_installed=flash) == expected


def test_attn_explicit_choices():
    assert resolve_attn_implementation("eager", torch.float32, "cpu", flash_installed=False) == "eager"
    assert resolve_attn_implementation("sdpa", torch.float32, "cpu", flash_installed=False) == "sdpa"
    with pytest.raises(ConfigError, match="flash_attention_2 cannot run here: cpu is not a CUDA GPU"):
        resolve_attn_implementation("flash_attention_2", torch.bfloat16, "cpu", flash_installed=True)
    with pytest.raises(ConfigError, match="flash_attention_2 cannot run here: the flash-attn package is not"):
        resolve_attn_implementation("flash_attention_2", torch.bfloat16, "cuda", flash_installed=False)


def test_inference_load_on_cpu(tiny_llama):
    model = load_model(ModelConfig(name=str(tiny_llama)), device="cpu")
    assert model.dtype is torch.float32 and model.device.type == "cpu" and not model.training
    assert model.config._attn_implementation == "sdpa"
    assert all(p.requires_grad for p in model.parameters())  # freezing is PEFT's job, not the loader's


def test_explicit_attention_and_dtype_reach_the_model(tiny_models):
    cfg = ModelConfig(name=str(tiny_models("phi3")), attn_implementation="eager", dtype="bfloat16")
    model = load_model(cfg, method="lora", device="cpu")
    assert model.config._attn_implementation == "eager" and model.dtype is torch.bfloat16 and model.training


def test_rope_scaling_is_merged_into_the_config(tiny_llama):
    cfg = ModelConfig(name=str(tiny_llama), rope_scaling={"type": "linear", "factor": 2.0})
    model = load_model(cfg, device="cpu")
    assert model.config.rope_parameters == {"rope_theta": 10000.0, "rope_type": "linear", "factor": 2.0}
    assert model.model.rotary_emb.rope_type == "linear"


@pytest.mark.parametrize("scaling, message", [
    ({"type": "linear"}, "Missing required keys .*'linear'.*factor"),
    ({"type": "stretchy", "factor": 2.0}, "type 'stretchy' is not one of linear, dynamic"),
])
def test_bad_rope_scaling(tiny_llama, scaling, message):
    with pytest.raises(ConfigError, match=f"model.rope_scaling: {message}"):
        load_model(ModelConfig(name=str(tiny_llama), rope_scaling=scaling), device="cpu")


def test_qlora_loads_nf4_on_cpu_and_trains(tiny_models):
    from bitsandbytes.nn import Linear4bit
    from peft import get_peft_model

    from medtune.config import LoraConfig
    from medtune.models.lora import build_peft_config

    model = load_model(ModelConfig(name=str(tiny_models("phi3"))), method="qlora", device="cpu")
    qkv = model.model.layers[0].self_attn.qkv_proj
    assert isinstance(qkv, Linear4bit) and qkv.weight.quant_type == "nf4" and model.is_loaded_in_4bit
    assert qkv.weight.quant_state.nested  # double quantisation
    peft_model = get_peft_model(model, build_peft_config(LoraConfig(target_modules="all-linear"), model))
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    out = peft_model(input_ids=ids, labels=ids)
    out.loss.backward()
    assert torch.isfinite(out.logits).all()
    grads = [p.grad for n, p in peft_model.named_parameters() if "lora_B" in n]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)


def test_unknown_method(tiny_llama):
    with pytest.raises(ConfigError, match="method 'qlora4' is not one of lora, qlora, full"):
        load_model(ModelConfig(name=str(tiny_llama)), method="qlora4")


def test_tokenizer_pad_and_padding_side(tiny_llama):
    tokenizer = load_tokenizer(ModelConfig(name=str(tiny_llama)), padding_side="left")
    assert tokenizer.pad_token == "<pad>" and tokenizer.padding_side == "left"
    with pytest.raises(ConfigError, match="padding side 'middle'"):
        load_tokenizer(ModelConfig(name=str(tiny_llama)), padding_side="middle")


def test_tokenizer_without_pad_gets_one(tiny_llama, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    tokenizer.pad_token = None
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(ModelConfig(name=str(tiny_llama), tokenizer=str(tmp_path)))
    assert loaded.pad_token == "<unk>" and loaded.padding_side == "right"


def test_missing_local_folder(tmp_path):
    with pytest.raises(MedtuneError, match="no such local folder"):
        load_model(ModelConfig(name=str(tmp_path / "nope")))


def test_folder_that_is_not_a_model(tmp_path):
    with pytest.raises(MedtuneError, match="has no config.json"):
        load_model(ModelConfig(name=str(tmp_path)))


def test_empty_name():
    with pytest.raises(ConfigError, match="model.name is empty"):
        load_model(ModelConfig(name=""))


def test_hub_id_offline_says_where_it_looked(monkeypatch):
    # offline mode makes the hub lookup fail at once instead of retrying for ~30 s
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(MedtuneError, match="^medtune-test/no-such-model: not a local folder, and the hub could not"):
        load_model(ModelConfig(name="medtune-test/no-such-model"))
    with pytest.raises(MedtuneError, match="not a local folder, and the hub could not be reached"):
        load_tokenizer(ModelConfig(name="medtune-test/no-such-model"))


def test_describe_device_and_peak_memory():
    assert describe_device("cpu").startswith("cpu (") and describe_device("cpu").endswith(" cores)")
    assert peak_memory_mb() > 10


@pytest.mark.timeout(60)
def test_hub_id_unreachable_fails_fast_with_a_download_hint():
    # without offline mode: one quick probe, not a minute of from_pretrained retries
    import time

    start = time.perf_counter()
    with pytest.raises(MedtuneError, match="^medtune-test/no-such-model-x: not a local folder"):
        load_tokenizer(ModelConfig(name="medtune-test/no-such-model-x"))
    assert time.perf_counter() - start < 20
