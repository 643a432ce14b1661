"""GPU memory each training method needs for the weights and optimizer, computed from parameter counts.

    python bench/scale_memory.py                # Llama-3.1-8B, Llama-3.1-70B, Phi-4-mini-instruct; LoRA r=16
    python bench/scale_memory.py --gpus 8 --r 64 --length 4096

The parameter counts are exact: each model is built from its published shape on PyTorch's meta device (no
weights, no download) and counted, and so is its LoRA adapter (PEFT on the same meta model, every linear layer of
every block). LoRA and QLoRA rows use medtune's own memory plan (src/medtune/training/memory.py, what `medtune
train` prints before it loads), for a bf16 GPU:

    LoRA          base bf16 (2 bytes); adapter fp32 (PEFT upcasts it): weight, gradient, two AdamW moments = 16
    QLoRA         every nn.Linear but the output head in NF4: 0.5 bytes + 0.127 bits of double-quantized
                  constants; embeddings, output head and norms fp32 (4 bytes: peft's prepare_model_for_kbit_training
                  upcasts them); adapter bf16 (TRL casts it): weight, gradient, two moments = 8
    QLoRA, FSDP   as QLoRA, but embeddings, head and norms stay bf16 (medtune, like TRL, skips the kbit preparation
                  under FSDP / ZeRO-3), and everything is divided by the number of GPUs
    full          16 bytes a parameter: bf16 weight + fp32 master + bf16 gradient + two fp32 AdamW moments (DeepSpeed's
                  mixed precision; a plain one-GPU run in bf16 weights keeps no fp32 master: 8)
    ZeRO-2        weights whole on every GPU; gradients and optimizer states divided

The last column adds one sequence of --length tokens with gradient checkpointing: TRL's fused LM head (one tile of
at most 4,096 tokens x 32,768 vocabulary entries and its gradient, never the whole logits) and the plan's estimate
of the activations (each block's input kept, one block recomputed). Activations grow with batch x length; a real
run's measured peak is peak_mem_mb in its run.json (bench/gpu_check.py prints the estimate beside it).
"""

from __future__ import annotations

import argparse
import sys

from shapes import SHAPES  # bench/ is the script's folder, so on sys.path

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
PHI3_TARGETS = ["qkv_proj", "o_proj", "gate_up_proj", "down_proj"]  # Phi-3's fused layers: the same weights
TRAINED_FULL = 16  # bf16 weight + fp32 master + bf16 gradient + two fp32 AdamW moments


def counts(family: str, shape: dict, r: int):
    """medtune's Counts (linear, other, LoRA parameters, vocabulary) of the model built on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Phi3Config, Phi3ForCausalLM

    from medtune.training.memory import base_counts

    config, cls = (LlamaConfig, LlamaForCausalLM) if family == "llama" else (Phi3Config, Phi3ForCausalLM)
    with torch.device("meta"):
        model = cls(config(**shape))
    model.tie_weights()
    found = base_counts(model)
    targets = TARGETS if family == "llama" else PHI3_TARGETS
    peft = get_peft_model(model, LoraConfig(r=r, target_modules=targets))
    found.trained = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    return found


def rows(found, gpus: int, length: int) -> list[tuple[str, float, float]]:
    """(method, GB per GPU for weights, gradients and optimizer states, the same with one checkpointed sequence's
    loss and activations)."""
    import torch

    from medtune.training.memory import plan_memory

    def plan(method: str, shards: int = 1):
        kbit = shards == 1  # under FSDP medtune skips prepare_model_for_kbit_training
        p = plan_memory(found, method, torch.bfloat16, "adamw", train_tokens=length, kbit_prepared=kbit,
                        shards=shards, checkpointing=True)
        return p.weights_gb + p.trained_gb, p.logits_gb + p.activations_gb

    base = found.linear + found.other
    full = TRAINED_FULL * base / 1e9
    logits = plan("lora")[1]
    out = [("LoRA, 1 GPU (or DDP: each GPU the same)", *plan("lora")), ("QLoRA, 1 GPU (or DDP)", *plan("qlora")),
           (f"LoRA, FSDP over {gpus} GPUs", *plan("lora", gpus)),
           (f"QLoRA, FSDP over {gpus} GPUs", *plan("qlora", gpus)),
           ("full, 1 GPU (fp32 master, as DeepSpeed)", full, logits),
           (f"full, ZeRO-2 over {gpus} GPUs", (2 * base + (TRAINED_FULL - 2) * base / gpus) / 1e9, logits),
           (f"full, FSDP / ZeRO-3 over {gpus} GPUs", full / gpus, logits),
           ("full, ZeRO-3 + CPU offload: the machine's CPU RAM", full, 0.0)]  # GPUs: a block at a time
    return [(name, floor, floor + extra) for name, floor, extra in out]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--r", type=int, default=16, help="LoRA rank (all the linear layers of every block)")
    parser.add_argument("--length", type=int, default=2048, help="tokens of the sequence whose loss and activations "
                        "are added")
    args = parser.parse_args()
    for name, (family, shape) in SHAPES.items():
        if name == "Phi-3-mini-4k":  # Phi-4-mini is the same block shape with a larger vocabulary
            continue
        found = counts(family, shape, args.r)
        print(f"\n{name}: {(found.linear + found.other) / 1e9:.2f}B parameters ({found.linear / 1e9:.2f}B in the "
              f"linear layers 4-bit quantizes), LoRA r={args.r}: {found.trained / 1e6:.1f}M")
        print(f"  {'':50s} {'weights + optimizer':>20s} {f'+ {args.length:,} tokens, checkpointed':>30s}")
        for method, floor, with_sequence in rows(found, args.gpus, args.length):
            where = "" if "RAM" in method else " per GPU"
            print(f"  {method:50s} {floor:11.1f} GB{where:8s} {with_sequence:21.1f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
