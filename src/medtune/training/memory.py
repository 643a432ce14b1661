"""The memory plan of a training run: what its weights, trained parameters, activations and loss take per device,
from exact parameter counts of the model built on the meta device (no weights), printed before the weights load;
on a CUDA GPU, a plan larger than the card's free memory is refused in one line naming settings that would fit.

Bytes per parameter, as the libraries medtune drives store them (read from their source):

    frozen base, lora           the run's dtype: 2 (bf16, fp16) or 4 (fp32)
    frozen base, qlora          every nn.Linear but the output head in 4-bit NF4 with double quantisation: 0.5 bytes
                                plus 0.127 bits for the block constants (the QLoRA paper's figure); the rest
                                (embeddings, output head, norms) in fp32, since peft's prepare_model_for_kbit_training
                                casts every parameter that is not 4-bit to fp32 (under FSDP / ZeRO-3, where medtune
                                skips that call, they stay in the run's dtype)
    trained parameter           its weight, its gradient (same dtype) and the optimizer's state: AdamW / Adam keep two
                                moments in the parameter's dtype, adamw_8bit two 8-bit moments, sgd none. The dtype:
                                LoRA adapters fp32 (peft upcasts them), QLoRA adapters bf16 on a bf16 run (TRL casts
                                them) else fp32 (medtune), full fine-tuning the weights' dtype (fp32 for an fp16 run)
    loss                        TRL's fused LM head (trl/kernels/chunked_logprob.py) projects at most 4,096 tokens x
                                32,768 vocabulary entries at a time in the compute dtype: one tile, and its gradient's
                                in backward, never the batch x length x vocabulary logits
    activations (estimate)      per token and block, what autograd keeps for backward in a Llama-like block, in the
                                compute dtype: the two norms' inputs and outputs, q, k, v after RoPE, attention's
                                output, o_proj's input, gate, up, their product and down_proj's input (7 x width +
                                3 x KV width + 4 x MLP width), plus the norms' fp32 copies (2 x 4 bytes x width);
                                with gradient checkpointing, each block's input alone, plus one block recomputed

FSDP and ZeRO-3 divide the weights and trained state by the number of processes. The activation figure is an
estimate (attention kernels, dropout masks and the allocator's fragmentation move it); a run's measured peak is
peak_mem_mb in run.json, and bench/gpu_check.py prints both. bench/scale_memory.py prints these plans for
Llama-3.1-8B and 70B shapes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from medtune.errors import ConfigError

NF4_BYTES = 0.5 + 0.127 / 8  # 4 bits + the double-quantized constants (8-bit absmax per 64, fp32 per 256 blocks)
GB = 1e9
OPTIMIZER_BYTES = {"adamw": None, "adam": None, "adamw_8bit": 2, "sgd": 0}  # None: two moments in the param's dtype
LOSS_TILE = (4096, 32768)  # TRL's fused LM head: tokens x vocabulary entries projected at a time
HEADROOM = 0.9  # of the free memory: the CUDA context, the allocator's fragmentation, the estimate's error


@dataclass
class Shape:
    """What the activations grow with, from the model's config."""

    hidden: int
    kv: int  # width of k (and of v): KV heads x head size
    mlp: int
    blocks: int

    def per_token(self, size: int) -> int:
        """Bytes one token's activations keep in one block for backward (see the module's docstring)."""
        return size * (7 * self.hidden + 3 * self.kv + 4 * self.mlp) + 8 * self.hidden


@dataclass
class Counts:
    """Parameters of a model, counted on the meta device."""

    linear: int  # in the layers 4-bit QLoRA quantizes: every nn.Linear but the output head
    other: int  # the rest of the base: embeddings, output head (once when tied), norms
    trained: int  # the adapter's (lora, qlora) or every parameter (full)
    vocab: int
    shape: Shape | None = None


@dataclass
class MemoryPlan:
    weights_gb: float  # the frozen base (0 for full: its weights are trained parameters)
    trained_gb: float  # trained parameters with their gradients and optimizer states
    logits_gb: float
    weights_detail: str
    trained_detail: str
    logits_detail: str
    where: str  # "per GPU", "in RAM"
    activations_gb: float = 0.0
    activations_detail: str = ""

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.trained_gb + self.logits_gb + self.activations_gb

    def line(self) -> str:
        weights = f"weights {self.weights_gb:.1f} GB ({self.weights_detail}), " if self.weights_gb else ""
        activations = (f", activations about {self.activations_gb:.1f} GB ({self.activations_detail})"
                       if self.activations_detail else "")
        return (f"memory plan: about {self.total_gb:.1f} GB {self.where}: {weights}"
                f"trained parameters with gradients and optimizer states {self.trained_gb:.1f} GB "
                f"({self.trained_detail}), loss {self.logits_gb:.1f} GB ({self.logits_detail}){activations}")


def count_base(model) -> tuple[int, int]:
    """(linear, other) parameters of a base model (before PEFT wraps it); tied weights count once."""
    import torch

    head = model.get_output_embeddings()
    linear = sum(m.weight.numel() for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head)
    return linear, sum(p.numel() for p in model.parameters()) - linear


def _dtype_name(dtype) -> str:
    return str(dtype).removeprefix("torch.")


def trained_dtype(method: str, dtype):
    """The dtype trainable parameters train in (see the module's docstring)."""
    import torch

    from medtune.models.load import weights_dtype

    if method == "full":
        return weights_dtype(dtype, method)
    if method == "qlora" and dtype == torch.bfloat16:
        return torch.bfloat16
    return torch.float32


def plan_memory(counts: Counts, method: str, dtype, optimizer: str, *, train_tokens: int, eval_tokens: int = 0,
                kbit_prepared: bool = True, shards: int = 1, where: str = "per GPU",
                checkpointing: bool = False) -> MemoryPlan:
    """The plan for `counts` trained with `method` in `dtype`; train_tokens: a micro-batch's tokens (micro-batch x
    max_length), eval_tokens: an evaluation batch's (0: no evaluation); checkpointing: gradient checkpointing."""
    import torch

    size = torch.empty(0, dtype=dtype).element_size()
    weights, detail = _weights(counts, method, dtype, size, kbit_prepared)
    trained = trained_dtype(method, dtype)
    t_size = torch.empty(0, dtype=trained).element_size()
    moments = OPTIMIZER_BYTES[optimizer]
    per_param = 2 * t_size + (2 * t_size if moments is None else moments)
    rows, columns = min(max(train_tokens, eval_tokens), LOSS_TILE[0]), min(counts.vocab, LOSS_TILE[1])
    tile = rows * columns
    logits_detail = f"TRL's fused LM head: a {rows:,} x {columns:,} tile and its gradient in {_dtype_name(dtype)}"
    shared = f", divided over {shards} processes" if shards > 1 else ""
    activations, activations_detail = _activations(counts.shape, size, train_tokens, checkpointing)
    return MemoryPlan(weights / shards / GB, counts.trained * per_param / shards / GB, 2 * tile * size / GB,
                      detail + shared, f"{counts.trained / 1e6:,.1f}M in {_dtype_name(trained)}, {optimizer}{shared}",
                      logits_detail, where, activations / GB, activations_detail)


def _activations(shape: Shape | None, size: int, tokens: int, checkpointing: bool) -> tuple[float, str]:
    """Bytes the blocks keep for backward over a micro-batch of `tokens` (the module's docstring says how)."""
    if shape is None:
        return 0.0, ""
    per_block = tokens * shape.per_token(size)
    if checkpointing:
        kept = tokens * shape.blocks * shape.hidden * size + per_block
        return kept, f"estimate: {tokens:,} tokens, each block's input kept, one block recomputed at a time"
    return per_block * shape.blocks, (f"estimate: {tokens:,} tokens x {shape.blocks} blocks; "
                                      "training.gradient_checkpointing=true keeps a fraction")


def _weights(counts: Counts, method: str, dtype, size: int, kbit_prepared: bool) -> tuple[float, str]:
    if method == "full":
        return 0.0, ""
    if method == "lora":
        return counts.linear * size + counts.other * size, f"{_dtype_name(dtype)}"
    other_size = 4 if kbit_prepared else size
    other_dtype = "float32" if kbit_prepared else _dtype_name(dtype)
    nf4, rest = counts.linear * NF4_BYTES, counts.other * other_size
    return nf4 + rest, (f"4-bit NF4 linear layers {nf4 / GB:.1f} GB, embeddings, output head and norms in "
                        f"{other_dtype} {rest / GB:.1f} GB")


def meta_model(cfg, dtype, attention):
    """The config's model built on the meta device: its shapes, no weights, no download of weights."""
    from accelerate import init_empty_weights
    from transformers import AutoModelForCausalLM

    from medtune.models.load import load_model_config

    with init_empty_weights():
        model = AutoModelForCausalLM.from_config(load_model_config(cfg.model), dtype=dtype,
                                                 attn_implementation=attention,
                                                 trust_remote_code=cfg.model.trust_remote_code)
    model.tie_weights()  # from_config on the meta device leaves tied embeddings untied (counted twice)
    return model


def adapter_params(cfg, model) -> int:
    """The LoRA parameters the config's lora section puts on `model` (wrapped in place: pass a meta model)."""
    from peft import get_peft_model

    from medtune.models.lora import build_peft_config

    peft_model = get_peft_model(model, build_peft_config(cfg.lora, model, quiet=True), low_cpu_mem_usage=True)
    return sum(p.numel() for p in peft_model.parameters() if p.requires_grad)


def base_counts(model, trained: int | None = None) -> Counts:
    """Counts of a base model (before PEFT wraps it); `trained` None: every parameter trains (full)."""
    linear, other = count_base(model)
    return Counts(linear, other, linear + other if trained is None else trained,
                  model.get_output_embeddings().weight.shape[0], shape_of(model.config))


def shape_of(config) -> Shape | None:
    """The widths and depth of a decoder's config (text config of a multimodal one); None where it has no such
    fields, and the plan then leaves the activations out."""
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    try:
        heads = text.num_attention_heads
        head_dim = getattr(text, "head_dim", None) or text.hidden_size // heads
        kv = (getattr(text, "num_key_value_heads", None) or heads) * head_dim
        return Shape(text.hidden_size, kv, text.intermediate_size, text.num_hidden_layers)
    except (AttributeError, TypeError):
        return None


def for_run(cfg, plan, counts: Counts, dtype, device: str, shards: bool) -> MemoryPlan:
    """The plan of a run with these counts: per GPU (or in RAM on a CPU), divided over the processes under FSDP /
    ZeRO-3 (`shards`)."""
    t = cfg.training
    return plan_memory(counts, cfg.method, dtype, t.optimizer, train_tokens=plan.micro_batch * cfg.model.max_length,
                       eval_tokens=t.batch_size * cfg.model.max_length if plan.has_eval else 0,
                       kbit_prepared=not shards, shards=plan.processes if shards else 1,
                       where="per GPU" if device.startswith("cuda") else "in RAM",
                       checkpointing=t.gradient_checkpointing)


def estimate(cfg, plan, device: str, dtype, shards: bool) -> tuple[MemoryPlan, Counts]:
    """The run's plan, from the model built on the meta device: what `medtune train` prints before it loads; and the
    counts it came from (for fits())."""
    from medtune.models.load import resolve_attn_implementation

    model = meta_model(cfg, dtype, resolve_attn_implementation(cfg.model.attn_implementation, dtype, device))
    counts = base_counts(model)  # before PEFT wraps the model's layers in place
    if cfg.method != "full":
        counts.trained = adapter_params(cfg, model)
    return for_run(cfg, plan, counts, dtype, device, shards), counts


# ---------------------------------------------------------------- does it fit the card


def _changed(cfg, section: str, **values):
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})


def alternatives(cfg, plan) -> list[tuple[str, object]]:
    """(setting to name, change) for what lowers memory, in the order a user would try them: gradient checkpointing,
    one sequence per micro-batch, a 4-bit base, a shorter max_length; change(cfg, plan) -> (cfg, plan)."""
    t, out = cfg.training, []
    if not t.gradient_checkpointing:
        out.append(("training.gradient_checkpointing=true",
                    lambda c, p: (_changed(c, "training", gradient_checkpointing=True), p)))
    if plan.micro_batch > 1:
        steps = plan.micro_batch * plan.accumulation
        out.append((f"training.batch_size=1 training.gradient_accumulation_steps={steps} (the same step)",
                    lambda c, p: (_changed(c, "training", batch_size=1, gradient_accumulation_steps=steps),
                                  dataclasses.replace(p, micro_batch=1, accumulation=steps))))
    if cfg.method == "lora":
        out.append(("lora.method=qlora", lambda c, p: (_changed(c, "lora", method="qlora"), p)))
    if cfg.model.max_length > 512:
        out.append((f"model.max_length={cfg.model.max_length // 2}",
                    lambda c, p: (_changed(c, "model", max_length=c.model.max_length // 2), p)))
    return out


def fits(cfg, plan, counts: Counts, dtype, shards: bool, free_gb: float, total_gb: float) -> None:
    """On a CUDA GPU with `free_gb` free: a plan over HEADROOM of it is refused, naming the single changes that would
    fit (or, where none does, the fewest of them in order that fit together), and how to start anyway."""
    def need(c, p) -> float:
        return for_run(c, p, counts, dtype, "cuda", shards).total_gb

    wanted, room = need(cfg, plan), HEADROOM * free_gb
    if wanted <= room:
        return
    options = alternatives(cfg, plan)
    fitting = [(name, gb) for name, change in options if (gb := need(*change(cfg, plan))) <= room]
    together, names = (cfg, plan), []
    for name, change in options if not fitting and len(options) > 1 else ():  # the first ones that fit together
        together, names = change(*together), [*names, name]
        if (gb := need(*together)) <= room:
            fitting = [(" and ".join(names), gb)]
            break
    hint = ("; ".join(f"{name} (about {gb:.1f} GB)" for name, gb in fitting) if fitting else
            f"none of medtune's settings does: a GPU with about {wanted / HEADROOM:.0f} GB free would")
    raise ConfigError(f"memory plan: about {wanted:.1f} GB per GPU, and the GPU has {free_gb:.1f} of {total_gb:.1f} "
                      f"GB free: training would run out of memory. What would fit: {hint} "
                      "(training.memory_check=false starts anyway)")


def free_cuda_gb(device: str) -> tuple[float, float]:
    """(free, total) GB of the CUDA device, as the driver reports them."""
    import torch

    free, total = torch.cuda.mem_get_info(torch.device(device))
    return free / GB, total / GB
