"""LoRA target resolution per architecture: presets, fused Phi-3 layers, unknown names, top-N blocks."""

from __future__ import annotations

import logging

import pytest
from peft import get_peft_model
from transformers import AutoModelForCausalLM

from medtune.config import LoraConfig
from medtune.errors import ConfigError
from medtune.models.lora import (
    build_peft_config,
    format_trainable,
    linear_layers,
    resolve_target_modules,
    trainable_summary,
)

ARCHS = ("llama", "mistral", "phi3", "qwen2")
SPLIT_ATTN = ["q_proj", "k_proj", "v_proj", "o_proj"]
SPLIT_MLP = ["gate_proj", "up_proj", "down_proj"]
EXPECTED = {  # model order of the layers (Phi3Attention defines o_proj before qkv_proj)
    ("llama", "attention"): SPLIT_ATTN, ("llama", "mlp"): SPLIT_MLP,
    ("mistral", "attention"): SPLIT_ATTN, ("mistral", "mlp"): SPLIT_MLP,
    ("qwen2", "attention"): SPLIT_ATTN, ("qwen2", "mlp"): SPLIT_MLP,
    ("phi3", "attention"): ["o_proj", "qkv_proj"], ("phi3", "mlp"): ["gate_up_proj", "down_proj"],
}
RECIPE = ["q_proj", "v_proj", "k_proj", "o_proj"]  # the order of the common medical config.yaml


@pytest.fixture(scope="module")
def models(tiny_models):
    return {arch: AutoModelForCausalLM.from_pretrained(tiny_models(arch)) for arch in ARCHS}


def wrapped(peft_model) -> list[str]:
    """Names of the layers PEFT actually put an adapter on, without the PeftModel prefix."""
    return sorted(n.removeprefix("base_model.model.") for n, m in peft_model.named_modules() if hasattr(m, "lora_A"))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset", ["attention", "mlp"])
def test_presets(models, arch, preset):
    assert resolve_target_modules(models[arch], preset) == (EXPECTED[arch, preset], [])


@pytest.mark.parametrize("arch", ARCHS)
def test_all_linear_is_attention_plus_mlp_without_lm_head(models, arch):
    names, warnings = resolve_target_modules(models[arch], "all-linear")
    assert names == EXPECTED[arch, "attention"] + EXPECTED[arch, "mlp"] and warnings == []
    assert resolve_target_modules(models[arch], "all_linear")[0] == names


@pytest.mark.parametrize("arch", ["llama", "mistral", "qwen2"])
def test_split_names_are_kept_as_asked(models, arch):
    assert resolve_target_modules(models[arch], RECIPE) == (RECIPE, [])
    assert resolve_target_modules(models[arch], "v_proj") == (["v_proj"], [])


def test_phi3_maps_qkv_to_the_fused_layer_with_one_warning(models):
    names, warnings = resolve_target_modules(models["phi3"], SPLIT_ATTN)
    assert names == ["qkv_proj", "o_proj"]
    assert warnings == ["Phi3 fuses q,k,v into qkv_proj: adapting qkv_proj, o_proj "
                        "(asked for q_proj, k_proj, v_proj, o_proj)"]


def test_phi3_maps_gate_up_and_qkv_in_one_line(models):
    names, warnings = resolve_target_modules(models["phi3"], ["gate_proj", "up_proj", "down_proj", "q_proj"])
    assert names == ["gate_up_proj", "down_proj", "qkv_proj"]
    assert warnings == ["Phi3 fuses gate,up into gate_up_proj and q,k,v into qkv_proj: adapting gate_up_proj, "
                        "down_proj, qkv_proj (asked for gate_proj, up_proj, down_proj, q_proj)"]


def test_phi3_fused_names_asked_directly_give_no_warning(models):
    assert resolve_target_modules(models["phi3"], ["qkv_proj", "o_proj"]) == (["qkv_proj", "o_proj"], [])


def test_unknown_name_lists_the_model_layers(models):
    with pytest.raises(ConfigError) as e:
        resolve_target_modules(models["phi3"], ["q_proj", "query"])
    assert str(e.value) == ("lora.target_modules: no layer named 'query' in Phi3; its linear layers are o_proj, "
                            "qkv_proj, gate_up_proj, down_proj, lm_head (or a preset: attention, mlp, all-linear)")


def test_empty_list_is_an_error(models):
    with pytest.raises(ConfigError, match="empty"):
        resolve_target_modules(models["llama"], [])


def test_popular_recipe_on_phi3_adapts_qkv_in_every_block(tiny_models, caplog):
    model = AutoModelForCausalLM.from_pretrained(tiny_models("phi3"))
    with caplog.at_level(logging.WARNING, logger="medtune.models.lora"):
        peft_model = get_peft_model(model, build_peft_config(LoraConfig(target_modules=RECIPE), model))
    assert wrapped(peft_model) == [f"model.layers.{i}.self_attn.{n}" for i in (0, 1) for n in ("o_proj", "qkv_proj")]
    assert "fuses q,k,v into qkv_proj" in caplog.text


@pytest.mark.parametrize("arch", ["llama", "phi3"])
def test_num_layers_adapts_only_the_top_blocks(tiny_models, arch):
    model = AutoModelForCausalLM.from_pretrained(tiny_models(arch, "small"))  # 4 blocks
    names, _ = resolve_target_modules(model, "attention", num_layers=2)
    peft_model = get_peft_model(model, build_peft_config(LoraConfig(target_modules="attention", num_layers=2), model))
    expected = sorted(f"model.layers.{i}.self_attn.{n}" for i in (2, 3) for n in EXPECTED[arch, "attention"])
    assert sorted(names) == expected and wrapped(peft_model) == expected


def test_num_layers_larger_than_the_model_adapts_all_with_a_warning(models):
    names, warnings = resolve_target_modules(models["llama"], "mlp", num_layers=5)
    assert names == [f"model.layers.{i}.mlp.{n}" for i in (0, 1) for n in SPLIT_MLP]
    assert warnings == ["lora.num_layers = 5 but Llama has 2 blocks: adapting all"]


def test_num_layers_below_one_is_an_error(models):
    with pytest.raises(ConfigError, match="at least 1"):
        resolve_target_modules(models["llama"], "mlp", num_layers=0)


def test_peft_config_fields(models):
    cfg = LoraConfig(r=8, alpha=16, dropout=0.1, target_modules="mlp", use_rslora=True, use_dora=True)
    peft_cfg = build_peft_config(cfg, models["qwen2"])
    assert (peft_cfg.r, peft_cfg.lora_alpha, peft_cfg.lora_dropout) == (8, 16, 0.1)
    assert peft_cfg.use_rslora and peft_cfg.use_dora and peft_cfg.task_type == "CAUSAL_LM"
    assert set(peft_cfg.target_modules) == set(SPLIT_MLP)


def test_trainable_summary_counts_lora_parameters(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models("llama"))
    total = model.num_parameters()
    assert trainable_summary(model) == (total, total, 100.0)
    peft_model = get_peft_model(model, build_peft_config(LoraConfig(r=4, target_modules="attention"), model))
    lora = 2 * 4 * ((64 + 64) + (64 + 32) + (64 + 32) + (64 + 64))  # 2 blocks, r*(in+out) for q, k, v, o
    assert trainable_summary(peft_model) == (lora, total + lora, pytest.approx(100 * lora / (total + lora)))
    assert format_trainable(peft_model) == f"trainable {lora:,} of {total + lora:,} parameters (2.50%)"


def test_an_already_wrapped_model_lists_its_layers_once(tiny_models):
    model = AutoModelForCausalLM.from_pretrained(tiny_models("phi3"))
    before = linear_layers(model)
    peft_model = get_peft_model(model, build_peft_config(LoraConfig(target_modules="attention"), model))
    assert [n.removeprefix("base_model.model.") for n in linear_layers(peft_model)] == before
    assert resolve_target_modules(peft_model, "mlp")[0] == ["gate_up_proj", "down_proj"]


def test_full_paths_regular_expressions_and_the_head_reach_peft(models):
    import copy

    model = models["phi3"]
    path = "model.layers.0.self_attn.qkv_proj"
    names, _ = resolve_target_modules(model, [path, "lm_head"])
    assert names == ["lm_head", path]
    adapted = wrapped(get_peft_model(copy.deepcopy(model), build_peft_config(LoraConfig(target_modules=[path]),
                                                                             model)))
    assert adapted == [path]
    names, _ = resolve_target_modules(model, r".*\.1\.self_attn\.(qkv|o)_proj")
    assert names == ["model.layers.1.self_attn.o_proj", "model.layers.1.self_attn.qkv_proj"]
    for bad, message in [(["model.layers.9.mlp.down_proj"], "no linear layer at"), ("(", "not a valid regular"),
                         (r".*nothing", "matches no linear layer")]:
        with pytest.raises(ConfigError, match=message):
            resolve_target_modules(model, bad)
    with pytest.raises(ConfigError, match="num_layers picks blocks by layer name"):
        resolve_target_modules(model, [path], num_layers=1)
