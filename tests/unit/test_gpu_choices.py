"""What medtune chooses on a GPU, checked without one (issue #30): the device queries are mocked (a T4 is compute
capability 7.5, an A100 8.0, two visible GPUs a device_count of 2), and the choices and the arguments medtune passes
are checked. Where bitsandbytes runs on this CPU, the 4-bit paths are the real ones on tiny models: QLoRA
inference loads 4-bit, FSDP + QLoRA keeps one dtype, the QLoRA merge dequantizes, the memory plan's fp32 embeddings.
No GPU ran any of this."""

import gc
import json
import sys
import types
import weakref
from types import SimpleNamespace

import pytest
import torch

from fixture_data import MEDICAL_O1_SAMPLE
from medtune import config as config_mod
from medtune.config import ModelConfig
from medtune.errors import ConfigError, MedtuneError
from medtune.inference import vllm_engine, weights
from medtune.models.load import (
    attention_note,
    load_model,
    nf4_config,
    resolve_attn_implementation,
    resolve_dtype,
    weights_dtype,
)
from medtune.training import args as args_mod
from medtune.training import distributed, memory, trainer

pytest.importorskip("bitsandbytes")  # the dev extra installs it; its CPU backend runs 4-bit NF4 here

T4, A100 = (7, 5), (8, 0)


@pytest.fixture
def gpu(monkeypatch):
    """gpu((major, minor), count=1): torch sees CUDA GPUs of that compute capability. is_bf16_supported says True
    as it does on a T4 (it counts emulation): medtune must not follow it."""

    def fake(capability, count=1):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
        monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *a, **k: capability)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
        monkeypatch.setattr(torch.cuda, "device_count", lambda: count)
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda *a, **k: (15 * 2**30, 16 * 2**30))
        monkeypatch.setattr(torch.version, "hip", None)

    return fake


def lora_run(model_dir, root, method="lora", dtype="auto", dora=False):
    """A run directory as training leaves it: config.yaml (method, dtype) and adapter/ with non-zero LoRA B."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    peft_model = get_peft_model(AutoModelForCausalLM.from_pretrained(model_dir),
                                LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], use_dora=dora,
                                           task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: an untrained adapter changes nothing
                param.copy_(torch.randn(param.shape, generator=generator) * 0.5)
    root.mkdir(parents=True)
    peft_model.save_pretrained(root / "adapter")
    cfg = config_mod.load(None, values={"model.name": str(model_dir), "output_dir": str(root),
                                        "lora.method": method, "model.dtype": dtype})
    cfg.save(root / "config.yaml")
    return root


def source_of(run):
    return weights.resolve(weights.config_beside(run=str(run)), run=str(run))


def modules(model) -> set[str]:
    return {type(m).__name__ for m in model.modules()}


# ---------------------------------------------------------------- 1, 4: dtype and attention from the capability


def test_a_t4_trains_in_fp16_without_flash_attention_and_with_fp32_trainable_parameters(gpu):
    gpu(T4)
    dtype = resolve_dtype("auto", "cuda")
    assert dtype is torch.float16  # not bf16: a T4 only emulates it
    assert args_mod._precision(dtype) == {"bf16": False, "fp16": True}
    assert nf4_config(dtype).bnb_4bit_compute_dtype is torch.float16
    assert resolve_attn_implementation("auto", dtype, "cuda", flash_installed=True) is None  # sdpa
    assert "compute capability 7.5 and flash-attention 2 needs 8.0" in attention_note("auto", dtype, "cuda", True)
    with pytest.raises(ConfigError, match="flash_attention_2 cannot run here: this GPU has compute capability 7.5"):
        resolve_attn_implementation("flash_attention_2", dtype, "cuda", flash_installed=True)
    assert weights_dtype(dtype, "full") is torch.float32  # fp16 autocast over fp32 weights, never fp16 weights
    assert weights_dtype(dtype, "lora") is torch.float16 and weights_dtype(dtype, "qlora") is torch.float16
    assert memory.trained_dtype("qlora", dtype) is torch.float32
    assert memory.trained_dtype("full", dtype) is torch.float32


def test_an_a100_trains_in_bf16_with_flash_attention_when_installed(gpu):
    gpu(A100)
    dtype = resolve_dtype("auto", "cuda:0")
    assert dtype is torch.bfloat16 and args_mod._precision(dtype) == {"bf16": True, "fp16": False}
    assert resolve_attn_implementation("auto", dtype, "cuda:0", flash_installed=True) == "flash_attention_2"
    assert resolve_attn_implementation("auto", dtype, "cuda:0", flash_installed=False) is None
    assert attention_note("auto", dtype, "cuda:0", flash_installed=False) is None  # nothing to explain
    assert weights_dtype(dtype, "full") is torch.bfloat16 and memory.trained_dtype("qlora", dtype) is torch.bfloat16


def test_qlora_adapters_train_in_fp32_unless_the_run_is_bf16(tiny_llama):
    """SFTTrainer casts a quantized model's trainable parameters to bf16 whatever the precision (trl 1.16,
    sft_trainer.py: `param.data = param.data.to(torch.bfloat16)`); medtune undoes it where the run is not bf16."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    def adapter_dtypes(run_dtype):
        model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama), LoraConfig(r=4, task_type="CAUSAL_LM"))
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.to(torch.bfloat16)  # what SFTTrainer does
        trainer.adapter_dtype(model, run_dtype)
        return {p.dtype for p in model.parameters() if p.requires_grad}

    assert adapter_dtypes(torch.float16) == {torch.float32}  # a T4: the gradient scaler needs fp32 parameters
    assert adapter_dtypes(torch.float32) == {torch.float32}  # the CPU
    assert adapter_dtypes(torch.bfloat16) == {torch.bfloat16}  # TRL's choice on a bf16 GPU stays


def test_full_fine_tuning_in_fp16_loads_fp32_weights(tiny_llama):
    fp16 = ModelConfig(name=str(tiny_llama), dtype="float16")
    assert load_model(fp16, method="full", device="cpu").dtype is torch.float32
    assert load_model(fp16, method="lora", device="cpu").dtype is torch.float16  # a frozen base stays half


# ---------------------------------------------------------------- 2, 9: inference loads what trained


def test_a_qlora_runs_inference_loads_its_base_in_4bit_with_the_adapter_unmerged(tiny_llama, tmp_path):
    source = source_of(lora_run(tiny_llama, tmp_path / "run", method="qlora"))
    assert weights.trained_in_4bit(source)
    _, model = weights.load_weights(source, "cpu", merge_adapter=True)
    assert type(model).__name__ == "PeftModelForCausalLM" and "Linear4bit" in modules(model)
    quant = model.get_base_model().config.quantization_config
    trained = nf4_config(torch.float32)  # what training loaded it with on this device
    assert (quant.bnb_4bit_quant_type, quant.bnb_4bit_use_double_quant, quant.bnb_4bit_compute_dtype) == \
        (trained.bnb_4bit_quant_type, trained.bnb_4bit_use_double_quant, trained.bnb_4bit_compute_dtype)
    base = weights.resolve(source.config)  # eval --compare-base: the base as the run trained on it
    assert base.adapter is None and weights.trained_in_4bit(base)
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / weights.MERGE_INFO).write_text("{}")  # a merged folder loads as it is
    merged = weights.Source(weights._with_model(source.config, str(tmp_path / "merged")), None, "merged")
    assert not weights.trained_in_4bit(merged)


@pytest.mark.parametrize("dtype, merged", [("float32", True), ("bfloat16", False)])
def test_the_adapter_is_merged_at_load_time_only_into_float32(tiny_llama, tmp_path, dtype, merged):
    source = source_of(lora_run(tiny_llama, tmp_path / "run", dtype=dtype))
    assert not weights.trained_in_4bit(source)
    _, model = weights.load_weights(source, "cpu", merge_adapter=True)
    assert (type(model).__name__ == "LlamaForCausalLM") is merged  # bf16 + a small delta rounds the delta away


# ---------------------------------------------------------------- 3: FSDP / ZeRO-3 + QLoRA


def test_fsdp_and_zero3_shard_parameters_zero2_does_not(monkeypatch):
    import transformers.integrations.deepspeed as hf_deepspeed

    assert not distributed.shards_parameters()
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    assert distributed.shards_parameters()
    monkeypatch.delenv("ACCELERATE_USE_FSDP")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    monkeypatch.setattr(hf_deepspeed, "is_deepspeed_zero3_enabled", lambda: False)  # ZeRO-2
    assert not distributed.shards_parameters()
    monkeypatch.setattr(hf_deepspeed, "is_deepspeed_zero3_enabled", lambda: True)
    assert distributed.shards_parameters()


def test_qlora_under_fsdp_skips_the_kbit_preparation_and_keeps_one_dtype(tiny_llama):
    cfg = ModelConfig(name=str(tiny_llama), dtype="bfloat16")
    sharded = load_model(cfg, method="qlora", device="cpu", sharded=True, prepare_kbit=False)
    assert {p.dtype for p in sharded.parameters()} == {torch.bfloat16}  # the 4-bit weights stored in bf16 too
    prepared = load_model(cfg, method="qlora", device="cpu", sharded=True)  # what FSDP could not flatten
    assert {p.dtype for p in prepared.parameters()} == {torch.bfloat16, torch.float32}
    assert prepared.model.norm.weight.dtype is torch.float32


def test_build_skips_the_kbit_preparation_when_parameters_are_sharded(tiny_llama, tmp_path, monkeypatch):
    import medtune.models.load as load_mod
    from medtune.rundir import RunDir

    class Loaded(Exception):
        pass

    def record(*args, **kwargs):
        raise Loaded(kwargs)

    cfg = config_mod.load(None, values={"model.name": str(tiny_llama), "lora.method": "qlora",
                                        "training.max_steps": 2, "output_dir": str(tmp_path / "run")})
    plan = args_mod.plan(cfg, False, 8)
    monkeypatch.setattr(load_mod, "load_model", record)
    for shards in (True, False):
        monkeypatch.setattr(distributed, "shards_parameters", lambda s=shards: s)
        with pytest.raises(Loaded) as loaded:
            trainer.build(cfg, RunDir(tmp_path / "run"), {}, None, plan, stream=open("/dev/null", "w"))
        assert loaded.value.args[0]["prepare_kbit"] is not shards


def test_qlora_under_fsdp_in_fp16_is_refused_with_what_works():
    trainer.check_sharded_qlora("qlora", torch.bfloat16, True)
    trainer.check_sharded_qlora("qlora", torch.float16, False)  # one GPU or DDP: fp32 adapters
    with pytest.raises(ConfigError, match=r"needs a GPU that computes in bf16.*--nproc N, without --accelerate"):
        trainer.check_sharded_qlora("qlora", torch.float16, True)


# ---------------------------------------------------------------- 5: several GPUs in one process


def test_two_gpus_in_one_process_is_one_line_before_anything_loads(gpu, monkeypatch, tiny_llama, tmp_path):
    import medtune.models.load as load_mod
    from medtune.training.run import train

    gpu(A100, count=2)
    with pytest.raises(MedtuneError, match=r"^2 GPUs are visible to this one process: .*--nproc 2.*"
                                           r"CUDA_VISIBLE_DEVICES=0$"):
        distributed.check_one_gpu_per_process("cuda")
    distributed.check_one_gpu_per_process("cpu")
    monkeypatch.setattr(load_mod, "default_device", lambda: "cuda")
    cfg = config_mod.load(None, values={"model.name": str(tiny_llama), "output_dir": str(tmp_path / "run")})
    with pytest.raises(MedtuneError, match="--nproc 2"):
        train(cfg)
    assert not (tmp_path / "run").exists()  # nothing prepared, written or loaded
    monkeypatch.setenv("WORLD_SIZE", "2")  # a launcher's rank: one GPU each
    distributed.check_one_gpu_per_process("cuda:1")


# ---------------------------------------------------------------- 7: vLLM's arguments


@pytest.fixture
def stand_in_vllm(monkeypatch):
    """A module shaped like vllm for VllmEngine.load: LLM records its arguments."""
    made = []
    fake = SimpleNamespace(LLM=lambda **kw: made.append(kw) or SimpleNamespace(kw=kw), SamplingParams=dict)
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = lambda *a: SimpleNamespace(args=a)
    for name, module in (("vllm", types.ModuleType("vllm")), ("vllm.lora", types.ModuleType("vllm.lora")),
                         ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    monkeypatch.setattr(vllm_engine, "require_vllm", lambda: fake)
    vllm_engine._shared.clear()
    yield made
    vllm_engine._shared.clear()


def test_vllm_gets_a_capped_window_the_memory_share_and_a_4bit_base_for_qlora(stand_in_vllm, tiny_llama, tmp_path):
    run = lora_run(tiny_llama, tmp_path / "run", method="qlora")
    cfg = config_mod.load(run / "config.yaml", values={"model.max_length": 64, "generation.max_tokens": 32,
                                                       "eval.max_tokens": 16,
                                                       "model.vllm_gpu_memory_utilization": 0.6})
    engine = vllm_engine.VllmEngine.load(run=str(run), config=cfg)
    (args,) = stand_in_vllm
    assert args["max_model_len"] == 96 == engine.context_length  # 64 + 32, not the model's 4,096
    assert args["gpu_memory_utilization"] == 0.6 and args["quantization"] == "bitsandbytes"
    assert args["enable_lora"] and engine.lora is not None
    long = " ".join(["word"] * 200)
    with pytest.raises(MedtuneError, match="window of 96 tokens"):
        engine.request([{"role": "user", "content": long}])
    assert vllm_engine.window(cfg, 80) == 80  # the model's context caps it


def test_vllm_leaves_a_lora_base_unquantized_and_refuses_dora_in_one_line(stand_in_vllm, tiny_llama, tmp_path):
    vllm_engine.VllmEngine.load(run=str(lora_run(tiny_llama, tmp_path / "lora")))
    assert "quantization" not in stand_in_vllm[0]
    assert stand_in_vllm[0]["gpu_memory_utilization"] == 0.9  # vLLM's own default, from config.py
    dora = lora_run(tiny_llama, tmp_path / "dora", dora=True)
    with pytest.raises(MedtuneError, match=r"a DoRA adapter \(use_dora\), which vLLM does not run") as refused:
        vllm_engine.VllmEngine.load(run=str(dora))
    assert "\n" not in str(refused.value) and len(stand_in_vllm) == 1  # refused before vLLM started


# ---------------------------------------------------------------- 8: the QLoRA merge


@pytest.mark.slow
def test_a_qlora_merge_dequantizes_its_4bit_base_and_frees_a_copy_before_the_check(tiny_llama, tmp_path,
                                                                                   monkeypatch):
    import bitsandbytes.functional as bnb_functional
    from safetensors.torch import load_file

    from medtune.export import merge as merge_mod

    source = source_of(lora_run(tiny_llama, tmp_path / "run", method="qlora"))
    merged_copy, alive = [], []
    dequantized_with_adapter, check = merge_mod._dequantized_with_adapter, merge_mod._check

    def track(src):  # the model merge_and_unload will return: the dequantized base, with the adapter fused in
        tokenizer, model = dequantized_with_adapter(src)
        merged_copy.append(weakref.ref(model.get_base_model()))
        return tokenizer, model

    def check_after_free(*args, **kwargs):
        gc.collect()
        alive.append(merged_copy[0]() is not None)
        return check(*args, **kwargs)

    monkeypatch.setattr(merge_mod, "_dequantized_with_adapter", track)
    monkeypatch.setattr(merge_mod, "_check", check_after_free)
    result = merge_mod.merge(source, tmp_path / "merged")
    assert alive == [False]  # the merged copy was gone when the check reloaded the folder
    info = json.loads((tmp_path / "merged" / weights.MERGE_INFO).read_text())
    assert info["qlora_base"] == "dequantized" == result.qlora_base and info["max_logit_diff"] < 1e-4
    assert "dequantized to float32" in " ".join(info["notes"])

    # the merged weight is the NF4 weight as bitsandbytes dequantizes it, plus the adapter's delta
    four_bit = load_model(source.config.model, device="cpu", nf4=True)
    layer = four_bit.model.layers[0].self_attn.q_proj
    dequantized = bnb_functional.dequantize_4bit(layer.weight.data, layer.weight.quant_state)
    x = torch.randn(3, layer.in_features, requires_grad=True)  # the training forward: computes with that weight
    torch.testing.assert_close(layer(x), x @ dequantized.T, rtol=1e-5, atol=1e-5)
    adapter = load_file(str(source.adapter / "adapter_model.safetensors"))
    a, b = (adapter[f"base_model.model.model.layers.0.self_attn.q_proj.lora_{k}.weight"] for k in "AB")
    merged = load_file(str(tmp_path / "merged" / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    torch.testing.assert_close(merged, dequantized + (8 / 4) * b @ a, rtol=1e-5, atol=1e-6)

    original = merge_mod.merge(source, tmp_path / "original", qlora_base="original")
    assert original.qlora_base == "original" and "not the model that trained" in original.notes[0]
    unquantized = load_file(str(tmp_path / "original" / "model.safetensors"))["model.layers.0.self_attn.q_proj.weight"]
    assert (unquantized - merged).abs().max() > 1e-3  # the two merges differ by the quantization error


# ---------------------------------------------------------------- 10: the memory plan


def test_the_memory_plan_of_an_8b_qlora_run_counts_fp32_embeddings_and_head():
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                             num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                             tie_word_embeddings=False))
    counts = memory.base_counts(model, trained=41_943_040)  # LoRA r=16 on the seven linear layers
    plan = memory.plan_memory(counts, "qlora", torch.bfloat16, "adamw", train_tokens=2048, checkpointing=True)
    assert counts.other == 128256 * 4096 * 2 + (2 * 32 + 1) * 4096  # embeddings, head, norms
    assert 4.2 < counts.other * 4 / 1e9 < 4.21  # fp32: 4.2 GB of them, where 2 bytes said 2.1
    assert 7.8 < plan.weights_gb < 7.9  # not the 5.7 GB of 2-byte embeddings
    assert plan.logits_gb == 2 * 2048 * 32768 * 2 / 1e9  # TRL's fused head: one bf16 tile and its gradient
    assert 9 < plan.total_gb < 10  # the T4 recipe (2,048 tokens, checkpointing) fits a 16 GB card with room
    fsdp = memory.plan_memory(counts, "qlora", torch.bfloat16, "adamw", train_tokens=2048, kbit_prepared=False,
                              shards=8)
    assert fsdp.weights_gb < plan.weights_gb / 8  # no kbit preparation under FSDP: 2-byte embeddings, sharded
    assert plan.line().startswith("memory plan: about 9.")


def test_activations_grow_with_tokens_and_shrink_with_checkpointing():
    shape = memory.Shape(hidden=4096, kv=1024, mlp=14336, blocks=32)
    per_token = 2 * (7 * 4096 + 3 * 1024 + 4 * 14336) + 8 * 4096
    counts = memory.Counts(0, 0, 0, 128256, shape)
    plain = memory.plan_memory(counts, "lora", torch.bfloat16, "adamw", train_tokens=2048)
    assert plain.activations_gb == 2048 * 32 * per_token / 1e9
    double = memory.plan_memory(counts, "lora", torch.bfloat16, "adamw", train_tokens=4096)
    assert double.activations_gb == 2 * plain.activations_gb
    kept = memory.plan_memory(counts, "lora", torch.bfloat16, "adamw", train_tokens=2048, checkpointing=True)
    assert kept.activations_gb < plain.activations_gb / 10
    assert "activations about" in plain.line() and "gradient_checkpointing=true keeps a fraction" in plain.line()


def test_shape_of_reads_gqa_and_head_dim():
    from transformers import LlamaConfig

    shape = memory.shape_of(LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                        num_attention_heads=32, num_key_value_heads=8))
    assert shape == memory.Shape(4096, 1024, 14336, 32)


def test_the_plans_fp32_assumption_is_what_peft_does_to_a_4bit_model(tiny_llama):
    model = load_model(ModelConfig(name=str(tiny_llama), dtype="bfloat16"), method="qlora", device="cpu")
    counts = memory.base_counts(model)
    not_4bit = [p for p in model.parameters() if type(p).__name__ != "Params4bit"]
    assert {p.dtype for p in not_4bit} == {torch.float32}  # embeddings, head, norms upcast by peft
    assert sum(p.numel() for p in not_4bit) == counts.other


def test_train_prints_the_memory_plan_before_loading(tiny_llama, tmp_path, capsys):
    from medtune.cli import main

    argv = ["train", f"model.name={tiny_llama}", f"output_dir={tmp_path / 'run'}", "lora.method=qlora",
            f"data.train_file={MEDICAL_O1_SAMPLE}", "model.max_length=256",
            "data.overlong=truncate", "--dry-run"]
    assert main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    plan = next(i for i, line in enumerate(lines) if line.startswith("memory plan: about "))
    assert lines[plan - 1] == "# would train" and lines[plan + 1].startswith("model: ")
    assert "4-bit NF4 linear layers" in lines[plan] and "in RAM" in lines[plan]


def _llama_8b_counts(method_trained=41_943_040):
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336,
                                             num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8,
                                             tie_word_embeddings=False))
    return memory.base_counts(model, trained=method_trained)


def _cfg(**values):
    from medtune import config as config_mod

    return config_mod.load(None, values={"model.max_length": 2048, **values})


def test_a_plan_that_fits_the_free_memory_starts():
    from medtune.training.args import Plan

    cfg = _cfg(**{"lora.method": "qlora", "training.gradient_checkpointing": True})
    memory.fits(cfg, Plan("padding_free", 1, 4, False, None, None, 10), _llama_8b_counts(), torch.bfloat16, False,
                free_gb=15.5, total_gb=15.8)  # the T4 recipe on a 16 GB card: no error


def test_a_plan_over_the_free_memory_is_refused_naming_what_would_fit():
    from medtune.training.args import Plan

    plan = Plan("padding_free", 1, 4, False, None, None, 10)
    with pytest.raises(ConfigError) as refused:
        memory.fits(_cfg(), plan, _llama_8b_counts(), torch.bfloat16, False, free_gb=23.5, total_gb=24.0)
    message = str(refused.value)
    assert message.startswith("memory plan: about 30.") and "the GPU has 23.5 of 24.0 GB free" in message
    assert "What would fit: training.gradient_checkpointing=true (about 18." in message
    assert "lora.method=qlora" not in message  # 22 GB without checkpointing: over 90% of 23.5
    assert message.endswith("(training.memory_check=false starts anyway)")


def test_where_no_single_change_fits_the_first_ones_that_fit_together_are_named():
    from medtune.training.args import Plan

    plan = Plan("padding_free", 2, 2, False, None, None, 10)
    with pytest.raises(ConfigError) as refused:
        memory.fits(_cfg(**{"training.batch_size": 2, "training.gradient_accumulation_steps": 2}), plan,
                    _llama_8b_counts(), torch.bfloat16, False, free_gb=14.5, total_gb=15.8)
    message = str(refused.value)
    assert ("What would fit: training.gradient_checkpointing=true and training.batch_size=1 "
            "training.gradient_accumulation_steps=4 (the same step) and lora.method=qlora (about 9." in message)


def test_where_nothing_fits_the_card_needed_is_named():
    from medtune.training.args import Plan

    with pytest.raises(ConfigError, match="none of medtune's settings does: a GPU with about"):
        memory.fits(_cfg(**{"lora.method": "full"}), Plan("padding_free", 1, 1, False, None, None, 10),
                    _llama_8b_counts(None), torch.bfloat16, False, free_gb=7.5, total_gb=8.0)
