"""The memory plan of a training run: what its weights, trained parameters and logits take per device, from exact
parameter counts of the model built on the meta device (no weights), printed before the weights load.

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
    logits                      fp32, micro-batch x model.max_length x vocabulary, twice in training (the logits and
                                their gradient); an evaluation batch (training.batch_size sequences) once

FSDP and ZeRO-3 divide the weights and trained state by the number of processes. The activations of the blocks are
not counted: they grow with batch x length and shrink with gradient checkpointing (a run's peak_mem_mb in run.json
is the measured figure). bench/scale_memory.py prints these plans for Llama-3.1-8B and 70B shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

NF4_BYTES = 0.5 + 0.127 / 8  # 4 bits + the double-quantized constants (8-bit absmax per 64, fp32 per 256 blocks)
GB = 1e9
OPTIMIZER_BYTES = {"adamw": None, "adam": None, "adamw_8bit": 2, "sgd": 0}  # None: two moments in the param's dtype


@dataclass
class Counts:
    """Parameters of a model, counted on the meta device."""

    linear: int  # in the layers 4-bit QLoRA quantizes: every nn.Linear but the output head
    other: int  # the rest of the base: embeddings, output head (once when tied), norms
    trained: int  # the adapter's (lora, qlora) or every parameter (full)
    vocab: int


@dataclass
class MemoryPlan:
    weights_gb: float  # the frozen base (0 for full: its weights are trained parameters)
    trained_gb: float  # trained parameters with their gradients and optimizer states
    logits_gb: float
    weights_detail: str
    trained_detail: str
    logits_detail: str
    where: str  # "per GPU", "in RAM"

    @property
    def total_gb(self) -> float:
        return self.weights_gb + self.trained_gb + self.logits_gb

    def line(self) -> str:
        weights = f"weights {self.weights_gb:.1f} GB ({self.weights_detail}), " if self.weights_gb else ""
        return (f"memory plan: about {self.total_gb:.1f} GB {self.where} before the blocks' activations: {weights}"
                f"trained parameters with gradients and optimizer states {self.trained_gb:.1f} GB "
                f"({self.trained_detail}), logits {self.logits_gb:.1f} GB ({self.logits_detail})")


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
                kbit_prepared: bool = True, shards: int = 1, where: str = "per GPU") -> MemoryPlan:
    """The plan for `counts` trained with `method` in `dtype`; train_tokens: a micro-batch's tokens (micro-batch x
    max_length), eval_tokens: an evaluation batch's (0: no evaluation)."""
    import torch

    size = torch.empty(0, dtype=dtype).element_size()
    weights, detail = _weights(counts, method, dtype, size, kbit_prepared)
    trained = trained_dtype(method, dtype)
    t_size = torch.empty(0, dtype=trained).element_size()
    moments = OPTIMIZER_BYTES[optimizer]
    per_param = 2 * t_size + (2 * t_size if moments is None else moments)
    logits_tokens = max(2 * train_tokens, eval_tokens)
    logits = logits_tokens * counts.vocab * 4
    logits_detail = (f"{train_tokens:,} tokens of a micro-batch with their gradient" +
                     (f", or {eval_tokens:,} of an evaluation batch" if eval_tokens > 2 * train_tokens else "") +
                     f", x {counts.vocab:,} in float32")
    shared = f", divided over {shards} processes" if shards > 1 else ""
    return MemoryPlan(weights / shards / GB, counts.trained * per_param / shards / GB, logits / GB, detail + shared,
                      f"{counts.trained / 1e6:,.1f}M in {_dtype_name(trained)}, {optimizer}{shared}", logits_detail,
                      where)


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
                  model.get_output_embeddings().weight.shape[0])


def for_run(cfg, plan, counts: Counts, dtype, device: str, shards: bool) -> MemoryPlan:
    """The plan of a run with these counts: per GPU (or in RAM on a CPU), divided over the processes under FSDP /
    ZeRO-3 (`shards`)."""
    t = cfg.training
    return plan_memory(counts, cfg.method, dtype, t.optimizer, train_tokens=plan.micro_batch * cfg.model.max_length,
                       eval_tokens=t.batch_size * cfg.model.max_length if plan.has_eval else 0,
                       kbit_prepared=not shards, shards=plan.processes if shards else 1,
                       where="per GPU" if device.startswith("cuda") else "in RAM")


def estimate(cfg, plan, device: str, dtype, shards: bool) -> MemoryPlan:
    """The run's plan, from the model built on the meta device: what `medtune train` prints before it loads."""
    from medtune.models.load import resolve_attn_implementation

    model = meta_model(cfg, dtype, resolve_attn_implementation(cfg.model.attn_implementation, dtype, device))
    counts = base_counts(model)  # before PEFT wraps the model's layers in place
    if cfg.method != "full":
        counts.trained = adapter_params(cfg, model)
    return for_run(cfg, plan, counts, dtype, device, shards)
