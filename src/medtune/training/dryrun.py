"""--dry-run: what would be adapted and how many parameters would train, without loading any weights.

The model is built from its config on the meta device (no memory, no download of weights), so an 8B recipe can be
checked on a laptop; adapter targets are resolved against that skeleton exactly as in a real run.
"""

from __future__ import annotations

from medtune.config import Config


def describe_targets(cfg: Config, plan) -> dict:
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    from medtune.models.load import (
        default_device,
        describe_device,
        load_config,
        resolve_attn_implementation,
        resolve_dtype,
    )
    from medtune.training.trainer import describe

    device = default_device()
    dtype = resolve_dtype(cfg.model.dtype, device)
    if cfg.method == "qlora":
        from medtune.models.load import nf4_config

        nf4_config(dtype)  # fails now, not hours later, when bitsandbytes is missing
    attention = resolve_attn_implementation(cfg.model.attn_implementation, dtype, device)
    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(load_config(cfg.model), dtype=dtype, attn_implementation=attention,
                                                 trust_remote_code=cfg.model.trust_remote_code)
    model.tie_weights()  # from_config on the meta device leaves tied embeddings untied (counted twice)
    peft_config = None
    if cfg.method != "full":
        from peft import get_peft_model

        from medtune.models.lora import build_peft_config

        peft_config = build_peft_config(cfg.lora, model)
        model = get_peft_model(model, peft_config, low_cpu_mem_usage=True)
    info = describe(cfg, model, peft_config, describe_device(device), dtype, plan)
    info["attention"] = info["attention"] or "auto"
    return info
