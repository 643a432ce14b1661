"""The model, its adapter and an SFTTrainer wired with medtune's callbacks; the start-up summary lines."""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from medtune.config import Config
from medtune.errors import ConfigError
from medtune.rundir import RunDir
from medtune.training import args as args_mod
from medtune.training import distributed, kernels
from medtune.training.callbacks import (
    LOSS,
    CheckpointCallback,
    EarlyStoppingCallback,
    NanGuardCallback,
    Objective,
    ProgressCallback,
)

LAYOUTS = {
    "padding_free": "padding-free: each micro-batch concatenated, no pad tokens",
    "per_sequence": "padding-free: run as {n} micro-batches of one sequence",
    "grouped": "length-grouped padded batches",
    "none": "padded batches",
}


@dataclass
class Built:
    trainer: object
    nan_guard: NanGuardCallback
    early_stopping: EarlyStoppingCallback | None
    progress: ProgressCallback
    info: dict = field(default_factory=dict)  # what the start-up lines show, also written to run.json
    callbacks: list = field(default_factory=list)


def build(cfg: Config, run: RunDir, datasets: dict, tokenizer, plan, extra_callbacks=(), stream=None,
          resuming: bool = False) -> Built:
    """Load the base model, resolve the adapter targets, and assemble the trainer (nothing runs yet)."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgress
    from trl import SFTTrainer

    from medtune.models.load import attention_note, default_device, describe_device, load_model, resolve_dtype
    from medtune.training import memory as memory_mod

    device = distributed.device_for(default_device())
    dtype = resolve_dtype(cfg.model.dtype, device)
    # the arguments before the model: under DeepSpeed ZeRO-3 they tell from_pretrained to load it partitioned
    args = args_mod.sft_config(cfg, run, plan, dtype, device, resuming)
    shards = distributed.shards_parameters()
    check_sharded_qlora(cfg.method, dtype, shards)
    memory, counts = memory_mod.estimate(cfg, plan, device, dtype, shards)
    print(memory.line(), file=stream or sys.stdout, flush=True)  # read before an out-of-memory error, not after
    if device.startswith("cuda") and cfg.training.memory_check:  # refused now, not after minutes of loading
        memory_mod.fits(cfg, plan, counts, dtype, shards, *memory_mod.free_cuda_gb(device))
    model = load_model(cfg.model, cfg.method, device, sharded=distributed.sharded() is not None,
                       prepare_kbit=not shards)
    peft_config = None if cfg.method == "full" else _peft_config(cfg, model)
    built = callbacks_for(cfg, run, stream)
    trainer = SFTTrainer(
        model=model, args=args, train_dataset=datasets["train"],
        eval_dataset=datasets.get("valid"), processing_class=tokenizer, peft_config=peft_config,
        callbacks=[*built.callbacks, *extra_callbacks], optimizer_cls_and_kwargs=args_mod.optimizer_cls_and_kwargs(cfg),
    )
    for cls in (HFProgress, PrinterCallback):  # medtune's own progress callback prints one line per log step
        trainer.remove_callback(cls)
    if cfg.method == "qlora":
        adapter_dtype(trainer.model, dtype)
    built.trainer = trainer
    built.info = describe(cfg, trainer.model, peft_config, describe_device(device), dtype, plan)
    built.info["attention_note"] = attention_note(cfg.model.attn_implementation, dtype, device)
    built.info["memory_plan_gb"] = round(memory.total_gb, 2)
    built.info["parallel"] = parallel(trainer, plan.processes)
    return built


def parallel(trainer, processes: int) -> str | None:
    """How the processes share the work, as accelerate set it up: "DDP" (MULTI_GPU / MULTI_CPU), "FSDP",
    "DEEPSPEED"; None for one process."""
    if processes == 1:
        return None
    kind = str(trainer.accelerator.distributed_type).rsplit(".", 1)[-1]
    return {"MULTI_GPU": "DDP (GPU)", "MULTI_CPU": "DDP (CPU, gloo)"}.get(kind, kind)


def callbacks_for(cfg: Config, run: RunDir, stream, objective: Objective = LOSS) -> Built:
    """medtune's callbacks, in the order they must run: log the step, guard it, stop early, then publish.
    objective: what validation measures (SFT's loss, GRPO's reward) for early stopping and the kept checkpoint."""
    from medtune.models.load import peak_memory_mb

    patience = cfg.training.early_stopping_patience
    early = EarlyStoppingCallback(patience, objective) if patience else None
    built = Built(None, NanGuardCallback(), early, ProgressCallback(run, peak_memory_mb, stream))
    built.callbacks = [built.progress, built.nan_guard, *([early] if early else []),
                       CheckpointCallback(run, cfg.training.save_total_limit, objective)]
    return built


def check_sharded_qlora(method: str, dtype, shards: bool) -> None:
    """QLoRA under FSDP / ZeRO-3 keeps every weight of a unit in the compute dtype (the 4-bit weights stored in it,
    norms and adapters too), since FSDP flattens a unit in one dtype. In fp16 (a T4, a V100) that would train the
    adapters in fp16, where AdamW's updates round away: refused, with what works instead."""
    import torch

    if method == "qlora" and shards and dtype == torch.float16:
        raise ConfigError("QLoRA under FSDP or DeepSpeed ZeRO-3 needs a GPU that computes in bf16 (compute "
                          "capability 8.0 or later): each sharded unit holds one dtype, and in fp16 the adapters "
                          "would train in fp16. On these GPUs run QLoRA data-parallel instead (medtune train CONFIG "
                          "--nproc N, without --accelerate-config): each GPU holds the whole 4-bit model")


def adapter_dtype(model, dtype) -> None:
    """SFTTrainer (and GRPOTrainer) casts QLoRA adapters to bf16 whatever the precision (the paper's advice for bf16
    GPUs). Where the run is not bf16 the trainable parameters go back to fp32: in fp16 (T4, V100) the gradient
    scaler refuses fp16 gradients and small AdamW updates would round away; in fp32 (CPU) bf16 adapters only add
    casts and slow bf16 matmuls (which even crash CPUs whose VM hides AMX). Under FSDP / ZeRO-3 the run is bf16
    or fp32 (check_sharded_qlora), so the adapters keep the dtype of the units they are flattened with."""
    import torch

    if dtype != torch.bfloat16:
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()


def _peft_config(cfg: Config, model):
    from medtune.models.lora import build_peft_config

    return build_peft_config(cfg.lora, model)  # fused-layer mappings are logged as one warning line


def describe(cfg: Config, model, peft_config, device: str, dtype, plan) -> dict:
    from medtune.models.lora import trainable_summary

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    trainable, total, pct = trainable_summary(model)
    targets = sorted(peft_config.target_modules) if peft_config is not None else []
    return {
        "model": cfg.model.name, "architecture": type(base).__name__, "device": device,
        "kernels": kernels.resolve(cfg, device).line(),
        "dtype": str(dtype).removeprefix("torch."), "attention": getattr(base.config, "_attn_implementation", None),
        "method": cfg.method, "target_modules": targets, "trainable_params": trainable, "total_params": total,
        "trainable_percent": round(pct, 4), "packing": plan.packing, "backend": "torch",
    }


def startup_lines(cfg: Config, info: dict, data_line: str, plan) -> list[str]:
    """What is about to train, in a few lines a person reads before walking away."""
    t, lora = cfg.training, cfg.lora
    method = cfg.method if cfg.method == "full" else (
        f"{cfg.method} r={lora.r} alpha={lora.alpha:g} dropout={lora.dropout:g}"
        + (" rslora" if lora.use_rslora else "") + (" dora" if lora.use_dora else ""))
    note = f"; {info['attention_note']}" if info.get("attention_note") else ""
    lines = [f"model: {info['model']} ({info['architecture']}, {info['device']}, {info['dtype']}, "
             f"attention {info['attention']}{note})", f"method: {method}"]
    if info["target_modules"]:
        lines.append(f"adapted modules: {_short(info['target_modules'])}")
    lines.append(f"trainable {info['trainable_params']:,} of {info['total_params']:,} parameters "
                 f"({info['trainable_percent']:.2f}%)")
    if info.get("kernels"):
        lines.append(info["kernels"])
    steps = f"{plan.total_steps} steps" + ("" if t.max_steps > 0 else f" ({t.epochs:g} epoch(s))")
    if info.get("parallel"):
        lines.append(f"parallel: {info['parallel']} on {plan.processes} processes; rank 0 writes the run")
    asked = distributed.sharded()
    if asked and asked.upper() not in (info.get("parallel") or ""):  # accelerate falls back to DDP on CPUs
        lines.append(f"note: the accelerate config asks for {asked}, but accelerate runs {info.get('parallel')} "
                     f"here ({asked} shards across GPUs only)")
    lines += [data_line, f"plan: {steps}, batch {t.batch_size} x accumulation {t.gradient_accumulation_steps}"
              f"{_processes(plan)} ({LAYOUTS[plan.packing].format(n=plan.micro_batch * plan.accumulation)}), "
              f"lr {t.learning_rate:g} {t.lr_scheduler}, "
              f"optimizer {t.optimizer}, {_every('eval', plan.eval_steps, plan.has_eval)}, "
              f"{_every('save', plan.save_steps, True)}"]
    return lines


def _processes(plan) -> str:
    if plan.processes == 1:
        return ""
    return f" x {plan.processes} processes (= {plan.sequences_per_step} sequences per step)"


def _every(what: str, steps: int | None, enabled: bool) -> str:
    if not enabled:
        return f"no {what} (no validation split)"
    return f"{what} every {steps} steps" if steps else f"{what} at the end"


def _short(names: list[str]) -> str:
    """Leaf names, with the block count when the targets are full paths (lora.num_layers)."""
    leaves = list(dict.fromkeys(n.rsplit(".", 1)[-1] for n in names))
    if not any("." in n for n in names):
        return ", ".join(leaves)
    blocks = sorted({p for n in names for p in n.split(".") if p.isdigit()}, key=int)
    where = f"block {blocks[0]}" if blocks[0] == blocks[-1] else f"blocks {blocks[0]}-{blocks[-1]}"
    return f"{', '.join(leaves)} in {where} ({len(names)} layers)"
