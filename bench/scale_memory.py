"""GPU memory each training method needs for the weights and optimizer, computed from parameter counts.

    python bench/scale_memory.py                # Llama-3.1-8B and Llama-3.1-70B shapes, LoRA r=16 on all linears
    python bench/scale_memory.py --gpus 8 --r 64

The parameter counts are exact: each model is built from its published shape on PyTorch's meta device (no
weights, no download) and counted, and so is its LoRA adapter (PEFT on the same meta model). Bytes per parameter:

    frozen base, bf16            2          NF4 (QLoRA: the blocks' linear layers; embeddings, lm_head and norms
                                            stay bf16)   0.5 + 0.127 (double-quantized block constants)
    trained parameter            bf16 weight 2 + fp32 master 4 + bf16 grad 2 + AdamW moments 8 = 16
    DDP           every GPU holds everything
    FSDP / ZeRO-3 weights, gradients and optimizer states divided by the number of GPUs
    ZeRO-2        weights whole on every GPU; gradients and optimizer states divided

Activations are left out: they grow with batch x sequence length and shrink with gradient checkpointing, so
measure them on the real run (its metrics.jsonl has peak_mem_mb); the figures here are the floor.
"""

from __future__ import annotations

import argparse
import sys

SHAPES = {  # published config.json values (vocabulary, width, MLP width, blocks, heads, KV heads)
    "Llama-3.1-8B": dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                         num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False),
    "Llama-3.1-70B": dict(vocab_size=128256, hidden_size=8192, intermediate_size=28672, num_hidden_layers=80,
                          num_attention_heads=64, num_key_value_heads=8, tie_word_embeddings=False),
}
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
NF4 = 0.5 + 0.127  # 4 bits, plus the fp8 absmax per 64 and fp32 per 256 of double quantization
TRAINED = 16  # bf16 weight + fp32 master + bf16 gradient + two fp32 AdamW moments


def counts(shape: dict, r: int) -> tuple[int, int, int]:
    """(base parameters, of which in the blocks' linear layers, LoRA parameters) of the model built on the meta
    device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    with torch.device("meta"):
        model = LlamaForCausalLM(LlamaConfig(**shape))
    base = sum(p.numel() for p in model.parameters())
    linear = sum(m.weight.numel() for m in model.model.layers.modules() if isinstance(m, torch.nn.Linear))
    peft = get_peft_model(model, LoraConfig(r=r, target_modules=TARGETS))
    return base, linear, sum(p.numel() for p in peft.parameters() if p.requires_grad)


def rows(base: int, linear: int, lora: int, gpus: int) -> list[tuple[str, float]]:
    """(method, GB per GPU) for the weights, gradients and optimizer states (FSDP shards the adapter too)."""
    gb = 1e9
    adapter = lora * TRAINED
    nf4 = NF4 * linear + 2 * (base - linear)
    return [
        ("LoRA, 1 GPU (or DDP: each GPU the same)", (2 * base + adapter) / gb),
        ("QLoRA, 1 GPU (or DDP)", (nf4 + adapter) / gb),
        (f"LoRA, FSDP over {gpus} GPUs", (2 * base + adapter) / gpus / gb),
        (f"QLoRA, FSDP over {gpus} GPUs", (nf4 + adapter) / gpus / gb),
        ("full, 1 GPU", TRAINED * base / gb),
        (f"full, ZeRO-2 over {gpus} GPUs", (2 * base + (TRAINED - 2) * base / gpus) / gb),
        (f"full, FSDP / ZeRO-3 over {gpus} GPUs", TRAINED * base / gpus / gb),
        ("full, ZeRO-3 + CPU offload: the machine's CPU RAM", TRAINED * base / gb),  # GPUs: a block at a time
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8)
    parser.add_argument("--r", type=int, default=16, help="LoRA rank (all seven linear layers of every block)")
    args = parser.parse_args()
    for name, shape in SHAPES.items():
        base, linear, lora = counts(shape, args.r)
        print(f"\n{name}: {base / 1e9:.2f}B parameters ({linear / 1e9:.2f}B in the blocks' linear layers), "
              f"LoRA r={args.r}: {lora / 1e6:.1f}M")
        for method, size in rows(base, linear, lora, args.gpus):
            print(f"  {method:46s} {size:8.1f} GB" + ("" if "RAM" in method else " per GPU"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
