"""Running the trainer, and turning the ways training fails into one line a person can act on."""

from __future__ import annotations

from pathlib import Path

from medtune.config import Config
from medtune.errors import MedtuneError


class TrainingStopped(MedtuneError):
    """Training stopped on a fault (NaN loss, out of memory); the run directory keeps its last good checkpoint."""


def run_trainer(cfg: Config, built, checkpoint: Path | None) -> None:
    import torch

    try:
        built.trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    except torch.OutOfMemoryError as e:
        raise TrainingStopped(oom_advice(cfg, str(e))) from None
    except RuntimeError as e:
        if "out of memory" not in str(e).lower():
            raise
        raise TrainingStopped(oom_advice(cfg, str(e))) from None
    guard = built.nan_guard
    if guard.bad_step is not None:
        raise TrainingStopped(nan_message(cfg, guard.bad_step, guard.what, _last_checkpoint(cfg)))


def oom_advice(cfg: Config, error: str = "") -> str:
    """Concrete changes, most effective first, leaving out those already made."""
    t, m = cfg.training, cfg.model
    tips = []
    if t.batch_size > 1:
        tips.append(f"training.batch_size={max(1, t.batch_size // 2)} training.gradient_accumulation_steps="
                    f"{t.gradient_accumulation_steps * 2} (same effective batch)")
    tips.append(f"model.max_length={max(128, m.max_length // 2)} (data.overlong drop or truncate)")
    if not t.gradient_checkpointing:
        tips.append("training.gradient_checkpointing=true")
    if cfg.method != "qlora":
        tips.append("lora.method=qlora (4-bit base weights)")
    first = error.strip().splitlines()[0][:160] if error.strip() else "out of memory"
    return (f"out of memory with batch_size {t.batch_size} x max_length {m.max_length} ({first}). Try: "
            + "; ".join(tips))


def nan_message(cfg: Config, step: int, what: str, last_good: Path | None) -> str:
    kept = f"the last good checkpoint is {last_good}" if last_good else "no checkpoint was written before it"
    return (f"{what} became NaN/infinite at step {step}; training stopped and {kept}. Hint: lower "
            f"training.learning_rate (now {cfg.training.learning_rate:g}), keep training.max_grad_norm > 0 "
            f"(now {cfg.training.max_grad_norm:g}), add warmup, or use bfloat16 rather than float16")


def _last_checkpoint(cfg: Config) -> Path | None:
    from medtune.rundir import RunDir

    found = RunDir(Path(cfg.output_dir)).list_checkpoints()
    return found[-1][1] if found else None
