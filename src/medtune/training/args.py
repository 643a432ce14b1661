"""medtune's training section -> TRL's SFTConfig: every Trainer knob set from the config, nothing patched."""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass

from medtune.config import Config
from medtune.errors import ConfigError, first_line
from medtune.rundir import RunDir
from medtune.training import distributed, kernels

PADDING_FREE = ("padding_free", "per_sequence")
AT_THE_END = 10**9  # an interval never reached: the Trainer still evaluates and saves at its last step
OPTIMIZERS = {"adamw": "adamw_torch", "sgd": "sgd", "adamw_8bit": "adamw_bnb_8bit", "adam": "adamw_torch"}


@dataclass
class Plan:
    """The training knobs that need a decision, kept for the start-up lines and run.json."""

    packing: str  # padding_free | per_sequence | grouped | none
    micro_batch: int  # sequences per forward pass
    accumulation: int  # micro-batches per optimizer step (micro_batch x accumulation = the configured batch)
    has_eval: bool
    eval_steps: int | None
    save_steps: int | None
    total_steps: int
    processes: int = 1  # data-parallel processes (the launcher's WORLD_SIZE): each runs its own micro-batches

    @property
    def sequences_per_step(self) -> int:
        return self.micro_batch * self.accumulation * self.processes


def layout(cfg: Config, varlen_attention: bool) -> tuple[str, int, int]:
    """How sequences share a step. auto, chosen by bench/train_throughput.py: with a varlen attention kernel
    (flash-attention 2) concatenate the batch padding-free; with sdpa/eager the concatenated row would be attended
    as one L x L block, so run one sequence per micro-batch instead: no padding and no cross-sequence attention
    cost. On a CPU that is the fastest layout for long and short records alike (bench/README.md: 1.27x padded
    batches on whole medical-o1 records, 1.24x on answers alone, three rounds with intervals). The loss is
    normalised by the supervised tokens of the whole accumulated batch, so a batch of 4 run as 4 x 1 is the same
    optimizer step (tests/integration/test_train_controls.py checks it)."""
    t = cfg.training
    if t.packing != "auto":
        return t.packing, t.batch_size, t.gradient_accumulation_steps
    if varlen_attention or t.batch_size == 1:
        return "padding_free", t.batch_size, t.gradient_accumulation_steps
    return "per_sequence", 1, t.batch_size * t.gradient_accumulation_steps


def plan(cfg: Config, has_eval: bool, n_train: int, varlen_attention: bool = False) -> Plan:
    """Resolve the batch layout, the step count and the eval/save intervals; refuse what cannot work."""
    t = cfg.training
    packing, micro_batch, accumulation = layout(cfg, varlen_attention)
    if t.optimizer == "adamw_8bit" and importlib.util.find_spec("bitsandbytes") is None:
        raise ConfigError("training.optimizer = adamw_8bit needs bitsandbytes: pip install 'medtune[qlora]'")
    if t.max_steps == -1 and t.epochs <= 0:
        raise ConfigError("set training.max_steps > 0, or training.epochs > 0 with max_steps -1")
    _check_scheduler(t.lr_scheduler, t.lr_scheduler_kwargs, t.learning_rate)
    processes = distributed.world_size()
    total = total_steps(cfg, n_train, processes)
    eval_steps = t.eval_steps if has_eval else None
    if t.early_stopping_patience is not None:
        _check_early_stopping(cfg, has_eval)
        eval_steps = eval_steps or max(1, total // 10)  # the common config layout sets patience but no interval
        if t.save_steps not in (None, eval_steps):
            raise ConfigError(f"early stopping keeps the best checkpoint, so every evaluation must be saved: set "
                              f"training.save_steps to eval_steps ({eval_steps}) or leave it unset")
    save_steps = t.save_steps or eval_steps or max(1, total // 10)  # a killed run can always be resumed
    return Plan(packing, micro_batch, accumulation, has_eval, eval_steps, save_steps, total, processes)


def _check_scheduler(name: str, kwargs: dict, lr: float) -> None:
    """The Trainer's scheduler names and arguments, checked before the run directory is touched."""
    import difflib

    from transformers.trainer_utils import SchedulerType

    names = [s.value for s in SchedulerType]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f"; one of {', '.join(names)}"
        raise ConfigError(f"training.lr_scheduler = {name!r} is not a transformers scheduler{hint}")
    _try_scheduler(name, kwargs, lr)


def _try_scheduler(name: str, kwargs: dict, lr: float) -> None:
    """Build the scheduler once on a throw-away optimizer: a misspelt or missing argument in
    training.lr_scheduler_kwargs fails here, in transformers' own words, not after the run directory is written."""
    import warnings

    import torch
    from transformers.optimization import get_scheduler

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)  # polynomial checks lr_end < lr
    try:
        with warnings.catch_warnings():  # the real scheduler gives its own warnings once, at the start of training
            warnings.simplefilter("ignore")
            get_scheduler(name, optimizer, num_warmup_steps=1, num_training_steps=10,
                          scheduler_specific_kwargs=dict(kwargs))
    except (TypeError, ValueError) as e:
        raise ConfigError(f"training.lr_scheduler_kwargs = {dict(kwargs)} for {name}: {first_line(e)}") from None


def varlen_attention(cfg: Config) -> bool:
    """True when the attention kernel takes packed sequences natively (flash-attention 2 on a GPU)."""
    from medtune.models.load import default_device, resolve_attn_implementation, resolve_dtype

    device = default_device()
    dtype = resolve_dtype(cfg.model.dtype, device)
    return resolve_attn_implementation(cfg.model.attn_implementation, dtype, device) == "flash_attention_2"


def total_steps(cfg: Config, n_train: int, processes: int = 1) -> int:
    """Optimizer steps of the run, as the Trainer counts them (a last partial accumulation still steps); N
    processes each take a batch per micro-step, so an epoch has N times fewer steps."""
    t = cfg.training
    if t.max_steps > 0:
        return t.max_steps
    batches = math.ceil(n_train / (t.batch_size * processes))
    return max(1, math.ceil(math.ceil(batches / t.gradient_accumulation_steps) * t.epochs))


def _check_early_stopping(cfg: Config, has_eval: bool) -> None:
    t = cfg.training
    if t.early_stopping_patience < 1:
        raise ConfigError("training.early_stopping_patience must be at least 1 (or null for no early stopping)")
    if not has_eval:
        raise ConfigError("training.early_stopping_patience needs validation examples: set data.split with a "
                          "valid share (e.g. 0.9,0.1) or data.valid_file (if the split has one, the length policy "
                          "dropped them all: see the length audit)")


def sft_config(cfg: Config, run: RunDir, p: Plan, dtype, device: str, resuming: bool = False):
    """The SFTConfig for this run. Sequences arrive tokenized and already cut to max_length by prepare."""
    from trl import SFTConfig

    return SFTConfig(
        **trainer_args(cfg, run, p, dtype, device, resuming),
        padding_free=p.packing in PADDING_FREE, packing=False, max_length=None, completion_only_loss=True,
        train_sampling_strategy="group_by_length" if p.packing == "grouped" else "random",
        include_num_input_tokens_seen="all" if p.packing in PADDING_FREE else "non_padding",
        dataset_num_proc=None,
    )


def trainer_args(cfg: Config, run: RunDir, p: Plan, dtype, device: str, resuming: bool = False) -> dict:
    """The Trainer's arguments every stage sets alike: where, seed, batches, optimizer, precision, logging,
    evaluation and checkpoint intervals, tracking."""
    t = cfg.training
    return dict(
        output_dir=str(run.staging), seed=cfg.seed, data_seed=cfg.seed, use_cpu=device == "cpu",
        per_device_train_batch_size=p.micro_batch, per_device_eval_batch_size=t.batch_size,
        gradient_accumulation_steps=p.accumulation, max_steps=t.max_steps,
        num_train_epochs=t.epochs, **_optimizer_args(cfg), **_precision(dtype),
        logging_strategy="steps", logging_steps=t.logging_steps, logging_nan_inf_filter=False,
        eval_strategy="steps" if p.has_eval else "no", eval_steps=p.eval_steps or AT_THE_END,
        eval_on_start=p.has_eval and t.eval_on_start and not resuming,  # a resumed curve has its start already
        save_strategy="steps", save_steps=p.save_steps or AT_THE_END, save_total_limit=None,
        activation_checkpointing=t.gradient_checkpointing, activation_checkpointing_kwargs={"use_reentrant": False},
        report_to=[cfg.tracking.report_to] if cfg.tracking.report_to in ("wandb", "mlflow") else "none",
        run_name=cfg.tracking.run_name or run.root.resolve().name, dataloader_num_workers=0,
        restore_callback_states_from_checkpoint=False,
        ddp_find_unused_parameters=False,  # every adapted weight is used in each forward: skip DDP's graph search
        **kernels.resolve(cfg, device).trainer_args(),
    )


def _optimizer_args(cfg: Config) -> dict:
    t = cfg.training
    warmup = t.warmup_steps if t.warmup_steps > 0 else t.warmup_ratio  # a float < 1 is a share of the steps
    return dict(learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
                lr_scheduler_kwargs=dict(t.lr_scheduler_kwargs), warmup_steps=warmup,
                optim=OPTIMIZERS[t.optimizer], weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm)


def optimizer_cls_and_kwargs(cfg: Config):
    """Plain Adam (L2 decay, not decoupled) is not among the Trainer's names: hand it the class instead."""
    if cfg.training.optimizer != "adam":
        return None
    import torch

    return torch.optim.Adam, {"lr": cfg.training.learning_rate, "weight_decay": cfg.training.weight_decay}


def _precision(dtype) -> dict:
    """Mixed precision follows the weights' dtype: bf16/fp16 autocast on GPU, plain fp32 on CPU."""
    import torch

    return {"bf16": dtype == torch.bfloat16, "fp16": dtype == torch.float16}
