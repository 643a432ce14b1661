"""--dry-run: the resolved config, the length audit, what would be adapted and how many parameters would train,
without loading any weights or writing anything.

The model is built from its config on the meta device (no memory, no download of weights), so an 8B recipe can be
checked on a laptop; adapter targets are resolved against that skeleton exactly as in a real run. When the length
policy leaves no example, the plan is still shown, then the error (with the model.max_length that would fit).
"""

from __future__ import annotations

from typing import TextIO

import yaml

from medtune.config import Config
from medtune.errors import DataError


def dry_run(cfg: Config, out: TextIO, resume=None, inexact_resume: bool = False):
    from medtune.data.report import summary
    from medtune.rundir import RunDir
    from medtune.training import args as args_mod
    from medtune.training.run import (
        Result,
        checkpoint_to_resume,
        missing_resume_state,
        no_examples_message,
        prepare_examples,
    )
    from medtune.training.stages import stage_of
    from medtune.training.trainer import startup_lines

    print("# resolved config\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), file=out)
    stage = stage_of(cfg)
    tokenizer, prepared, encoded, data = prepare_examples(cfg)
    print(summary(prepared.report), file=out)
    n_train = len(encoded.get("train", []))
    if not n_train:  # nothing fits: show the plan for the data as split, then the error (a dry run shows the plan)
        plan = args_mod.plan(cfg, bool(prepared.splits.get("valid")), len(prepared.splits["train"]),
                             args_mod.varlen_attention(cfg))
        info = describe_targets(cfg, plan)
        print("\n".join(["# would train", info["memory"], *startup_lines(cfg, info, data.line(), plan)]), file=out)
        raise DataError(no_examples_message(cfg, prepared.report, data))
    plan = stage.plan(cfg, encoded, args_mod.varlen_attention(cfg))
    checks = stage.check(cfg, tokenizer, prepared, encoded)
    info = describe_targets(cfg, plan)
    print("\n".join(["# would train", info["memory"], *checks,
                     *startup_lines(cfg, info, stage.data_line(data), plan), *stage.lines(cfg, plan),
                     f"run directory: {RunDir(cfg.output_dir).root}"]), file=out, flush=True)
    checkpoint = checkpoint_to_resume(RunDir(cfg.output_dir), resume, out)  # what the real run refuses, it refuses
    missing_resume_state(checkpoint, inexact_resume, out)
    if checkpoint is not None:
        print(f"would resume from {checkpoint}", file=out)
    print("dry run: nothing trained, nothing written", file=out)
    return Result(RunDir(cfg.output_dir).root, "dry_run", info=info)


def describe_targets(cfg: Config, plan) -> dict:
    from medtune.models.load import (
        attention_note,
        default_device,
        describe_device,
        resolve_attn_implementation,
        resolve_dtype,
    )
    from medtune.training import distributed, memory
    from medtune.training.trainer import describe

    device = distributed.device_for(default_device())
    dtype = resolve_dtype(cfg.model.dtype, device)
    if cfg.method == "qlora":
        from medtune.models.load import nf4_config

        nf4_config(dtype)  # fails now, not hours later, when bitsandbytes is missing
    attention = resolve_attn_implementation(cfg.model.attn_implementation, dtype, device)
    model = memory.meta_model(cfg, dtype, attention)
    counts = memory.base_counts(model)  # before PEFT wraps the model's layers in place
    peft_config = None
    if cfg.method != "full":
        from peft import get_peft_model

        from medtune.models.lora import build_peft_config

        peft_config = build_peft_config(cfg.lora, model)
        model = get_peft_model(model, peft_config, low_cpu_mem_usage=True)
    info = describe(cfg, model, peft_config, describe_device(device), dtype, plan)
    info["attention"] = info["attention"] or "auto"
    info["attention_note"] = attention_note(cfg.model.attn_implementation, dtype, device)
    counts.trained = info["trainable_params"]
    # ZeRO-3 is known only once the training arguments exist: the dry run builds none, so it plans FSDP alone
    info["memory"] = memory.for_run(cfg, plan, counts, dtype, device, distributed.sharded() == "fsdp").line()
    return info
