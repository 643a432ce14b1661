"""Trainer callbacks: progress lines + metrics.jsonl, early stopping, the NaN guard, and whole checkpoints.

Each reads what it needs from the TrainerState (log_history survives a resume), so none keeps state of its own
that a checkpoint would have to carry.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass

from transformers import TrainerCallback

from medtune.rundir import RunDir, append_metrics
from medtune.training import distributed


@dataclass(frozen=True)
class Objective:
    """What validation measures and which way is better: SFT's loss (lower), GRPO's mean reward (higher)."""

    key: str  # the Trainer's logged name, e.g. eval_loss
    label: str  # run.json's and the model card's name, e.g. val_loss
    larger_is_better: bool = False


LOSS = Objective("eval_loss", "val_loss")
REWARD = Objective("eval_reward", "val_reward", larger_is_better=True)


def eval_history(log_history: list[dict], objective: Objective = LOSS) -> list[tuple[int, float]]:
    """(step, value) of every evaluation of the adapted model so far (step 0, the model before training, is a
    reference point, not a checkpoint to keep or a result to beat)."""
    return [(h["step"], h[objective.key]) for h in log_history
            if h.get(objective.key) is not None and h["step"] > 0]


def best_eval(log_history: list[dict], objective: Objective = LOSS) -> tuple[int, float] | None:
    """The best evaluation (the earliest on ties)."""
    evals = eval_history(log_history, objective)
    sign = -1 if objective.larger_is_better else 1
    return min(evals, key=lambda e: (sign * e[1], e[0])) if evals else None


# GRPO's logged figures (TRL's names) -> metrics.jsonl's names; rewards/<name>/mean and /std become reward_<name>
# and reward_<name>_std
RL_FIELDS = {"reward": "reward", "reward_std": "reward_std", "kl": "kl", "entropy": "entropy",
             "completions/mean_length": "completion_length", "completions/clipped_ratio": "clipped_ratio",
             "frac_reward_zero_std": "zero_std_groups"}


def rl_fields(logs: dict, prefix: str = "") -> dict:
    """The GRPO figures of one log (prefix eval_ for a validation log), renamed; nothing for an SFT log."""
    row = {name: logs[prefix + key] for key, name in RL_FIELDS.items() if logs.get(prefix + key) is not None}
    for key, value in logs.items():
        if key.startswith(prefix + "rewards/") and value is not None:
            name, _, stat = key[len(prefix + "rewards/"):].rpartition("/")
            if stat in ("mean", "std"):
                row[f"reward_{name}" + ("_std" if stat == "std" else "")] = value
    return row


class ProgressCallback(TrainerCallback):
    """A progress bar, one console line per logging step, and the same numbers appended to metrics.jsonl: by rank 0
    alone under several processes (the Trainer's logged loss is already their mean)."""

    def __init__(self, run: RunDir, peak_memory_mb, stream=None):
        self.run, self.peak_memory_mb, self.stream = run, peak_memory_mb, stream or sys.stdout
        # (the Trainer's eval_loss is logged as val_loss; GRPO's mean validation reward as val_reward)
        self.main = distributed.is_main()
        self.bar, self.pending = None, None
        self.last_time, self.last_tokens = time.perf_counter(), 0
        self.summary: dict = {}

    def on_train_begin(self, args, state, control, **kwargs):
        from tqdm.auto import tqdm

        if self.main:
            self.bar = tqdm(total=state.max_steps, initial=state.global_step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, leave=False)
        self.last_time, self.last_tokens = time.perf_counter(), state.num_input_tokens_seen

    def on_step_end(self, args, state, control, **kwargs):
        if self.bar is not None:
            self.bar.update(state.global_step - self.bar.n)
        if state.global_step >= state.max_steps:
            control.should_log = True  # the last step always gets its line, whatever logging_steps is

    def on_log(self, args, state, control, logs=None, **kwargs):
        logs = logs or {}
        if "train_loss" in logs:  # the summary at the end of train()
            self.summary = dict(logs)
        elif "loss" in logs:
            self._emit(self.pending)
            self.pending = self._train_row(state, logs)
            if not control.should_evaluate:  # otherwise the validation loss of this step joins the line
                self._emit(self.pending)
        elif "eval_loss" in logs or "eval_reward" in logs:
            row = self.pending if self.pending and self.pending["step"] == state.global_step else self._row(state)
            if "eval_reward" in logs:  # GRPO: its eval_loss is the policy loss on fresh samples, not a fit measure
                row.update({f"val_{k}": v for k, v in rl_fields(logs, "eval_").items()})
            else:
                row["val_loss"] = logs["eval_loss"]
            self._emit(row)

    def on_train_end(self, args, state, control, **kwargs):
        self._emit(self.pending)
        if self.bar is not None:
            self.bar.close()

    def _row(self, state) -> dict:
        return {"step": state.global_step, "epoch": round(state.epoch or 0.0, 4),
                "peak_mem_mb": round(self.peak_memory_mb(), 1)}

    def _train_row(self, state, logs: dict) -> dict:
        now, tokens = time.perf_counter(), state.num_input_tokens_seen
        speed = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_tokens = now, tokens
        row = self._row(state)
        row.update(train_loss=logs["loss"], lr=logs.get("learning_rate"), grad_norm=logs.get("grad_norm"),
                   tokens_per_s=round(speed, 1), **rl_fields(logs))
        return row

    def _emit(self, row: dict | None) -> None:
        if row is None or row.get("_written") or not self.main:
            return
        row["_written"] = True
        append_metrics(self.run.metrics, {k: v for k, v in row.items() if k != "_written"})
        line = format_line(row, self.max_steps)
        if self.bar is not None:
            self.bar.write(line, file=self.stream)
        else:
            print(line, file=self.stream)
        if row is self.pending:
            self.pending = None

    @property
    def max_steps(self) -> int | None:
        return self.bar.total if self.bar is not None else None


def format_line(row: dict, max_steps: int | None = None) -> str:
    """'step 10/100 | loss 2.3456 | val 2.4000 | lr 1.95e-04 | 1,234 tok/s | peak 1,024 MB'."""
    parts = [f"step {row['step']}" + (f"/{max_steps}" if max_steps else "")]
    if row.get("train_loss") is not None:
        parts.append(f"loss {row['train_loss']:.4f}")
    if row.get("val_loss") is not None:
        parts.append(f"val {row['val_loss']:.4f}")
    parts += _rl_parts(row)
    if row.get("lr") is not None:
        parts.append(f"lr {row['lr']:.2e}")
    if row.get("tokens_per_s") is not None:
        parts.append(f"{row['tokens_per_s']:,.0f} tok/s")
    parts.append(f"peak {row['peak_mem_mb']:,.0f} MB")
    return " | ".join(parts)


def _rl_parts(row: dict) -> list[str]:
    """'reward 1.250 (format 0.750, mcq 0.500) | val reward 1.000 | len 180 | clipped 25% | kl 0.0012'."""
    parts = []
    for prefix, label in (("", "reward"), ("val_", "val reward")):
        if row.get(prefix + "reward") is None:
            continue
        each = [f"{k[len(prefix) + 7:]} {v:.3f}" for k, v in row.items()
                if k.startswith(prefix + "reward_") and not k.endswith("_std") and v is not None]
        parts.append(f"{label} {row[prefix + 'reward']:.3f}" + (f" ({', '.join(each)})" if each else ""))
    if row.get("completion_length") is not None:
        parts.append(f"len {row['completion_length']:.0f}")
    if row.get("clipped_ratio") is not None:
        parts.append(f"clipped {100 * row['clipped_ratio']:.0f}%")
    if row.get("kl") is not None:
        parts.append(f"kl {row['kl']:.4f}")
    return parts


class EarlyStoppingCallback(TrainerCallback):
    """Stop after `patience` evaluations without a better validation figure than the best so far."""

    def __init__(self, patience: int, objective: Objective = LOSS):
        self.patience, self.objective = patience, objective
        self.stopped_at: int | None = None

    def on_evaluate(self, args, state, control, **kwargs):
        evals = eval_history(state.log_history, self.objective)
        best = best_eval(state.log_history, self.objective)
        since_best = sum(1 for step, _ in evals if step > best[0]) if best else 0
        if since_best >= self.patience:
            control.should_training_stop = True
            self.stopped_at = state.global_step


class NanGuardCallback(TrainerCallback):
    """A NaN or infinite loss (or weights) stops the run before anything bad is saved."""

    def __init__(self):
        self.bad_step: int | None = None
        self.what = ""

    def on_step_end(self, args, state, control, model=None, **kwargs):
        # every rank asks: each checks its own shard (FSDP), and all must take the same decision
        if control.should_save and model is not None and distributed.agree(not _trainable_finite(model)):
            self._stop(state, control, "weights")

    def on_log(self, args, state, control, logs=None, **kwargs):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(loss):
            self._stop(state, control, f"loss ({loss})")

    def _stop(self, state, control, what: str) -> None:
        if self.bad_step is None:
            self.bad_step, self.what = state.global_step, what
        control.should_training_stop = True
        control.should_save = False  # the last good checkpoint stays the latest one
        control.should_evaluate = False


def _trainable_finite(model) -> bool:
    import torch

    return all(bool(torch.isfinite(p).all()) for p in model.parameters() if p.requires_grad)


class CheckpointCallback(TrainerCallback):
    """Give each checkpoint its name only once written whole (by every rank: each writes its own RNG state, and
    FSDP / DeepSpeed their shards), then keep the newest N and the best."""

    def __init__(self, run: RunDir, keep_last: int | None, objective: Objective = LOSS):
        self.run, self.keep_last, self.objective = run, keep_last, objective

    def on_save(self, args, state, control, **kwargs):
        distributed.barrier()
        if distributed.is_main():
            self.run.publish_checkpoint(state.global_step)
            best = best_eval(state.log_history, self.objective)
            self.run.rotate(self.keep_last, best[0] if best else None)
        distributed.barrier()  # no rank goes on (or is killed) before the checkpoint has its final name
