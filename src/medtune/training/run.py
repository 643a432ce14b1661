"""One training run from a config: prepare, build, fit, and leave a complete run directory behind.

A `TrainingRun` carries what every step needs (config, run directory, prepared data, plan, start time, run.json
so far), so the steps take one argument instead of ten.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import yaml

from medtune import rundir as rd
from medtune.config import Config
from medtune.errors import DataError, MedtuneError
from medtune.training import args as args_mod
from medtune.training import distributed
from medtune.training.examples import DataSummary, summarize, trainable
from medtune.training.report import write_run_report


@dataclass
class Result:
    run_dir: Path
    status: str  # completed | early_stopped | dry_run
    global_step: int = 0
    weights_dir: Path | None = None
    info: dict | None = None


@dataclass
class TrainingRun:
    cfg: Config
    run: rd.RunDir
    out: TextIO
    tokenizer: object
    prepared: object  # data.pipeline.Prepared: the splits and the prepare report
    encoded: dict  # split -> Encoded examples that have something to learn
    data: DataSummary
    plan: args_mod.Plan
    stage: object  # training/stages.py: SFTStage or GRPOStage
    started: float = field(default_factory=time.time)
    checkpoint: Path | None = None  # the checkpoint resumed from
    missing_state: list = field(default_factory=list)  # what it lacked for an exact resume (accepted by the user)
    info: dict = field(default_factory=dict)  # run.json as it grows


def train(cfg: Config, resume: str | bool | None = None, dry_run: bool = False, callbacks=(), stream=None,
          inexact_resume: bool = False) -> Result:
    """Train as the config says. `resume`: True = latest checkpoint, a path = that checkpoint; a checkpoint without
    its optimizer, scheduler or RNG state is refused unless `inexact_resume`. Under a launcher of N processes every
    one runs this; only rank 0 writes files and lines."""
    distributed.exit_with_launcher()
    out = (stream or sys.stdout) if distributed.is_main() else open(os.devnull, "w")
    rd.RunDir(cfg.output_dir).check_folder()
    from medtune.models.load import default_device

    distributed.check_one_gpu_per_process(default_device())  # before anything is prepared or loaded
    if dry_run:
        from medtune.training.dryrun import dry_run as run_dry

        return run_dry(cfg, out, resume, inexact_resume)
    tr = start(cfg, out)
    tr.checkpoint = checkpoint_to_resume(tr.run, resume, out)
    tr.missing_state = missing_resume_state(tr.checkpoint, inexact_resume, out)
    distributed.barrier()  # every rank has looked at the run directory before rank 0 writes into it
    if tr.checkpoint is not None and _already_done(tr):
        return _complete_from_checkpoint(tr)
    if distributed.is_main():
        _write_start(tr)
    distributed.barrier()
    return _fit(tr, callbacks)


def start(cfg: Config, out: TextIO) -> TrainingRun:
    """Tokenizer, the prepare step and the plan: everything decided before a weight is loaded."""
    from medtune.training.stages import stage_of

    stage = stage_of(cfg)
    tokenizer, prepared, encoded, data = prepare_examples(cfg)
    if not encoded.get("train"):
        raise DataError(no_examples_message(cfg, prepared.report, data))
    plan = stage.plan(cfg, encoded, args_mod.varlen_attention(cfg))
    return TrainingRun(cfg, rd.RunDir(cfg.output_dir), out, tokenizer, prepared, encoded, data, plan, stage)


def prepare_examples(cfg: Config):
    """(tokenizer, prepared, encoded, summary): the same prepare step as `medtune prepare`, then only examples
    with something to learn."""
    from medtune.data.pipeline import prepare
    from medtune.models.load import load_tokenizer

    tokenizer = load_tokenizer(cfg.model)
    prepared = prepare(cfg, tokenizer)
    encoded, dropped = trainable(prepared.encoded, prepared.report.get("dropped", {}))
    return tokenizer, prepared, encoded, summarize(encoded, dropped)


def no_examples_message(cfg: Config, report: dict, data: DataSummary) -> str:
    """Why nothing is left to train on, and the model.max_length that would keep 90% of the records."""
    from medtune.data.report import length_advice

    return (f"no training example left after the length policy ({data.line()}): "
            f"{length_advice(report, cfg.model.max_length)}")


def checkpoint_to_resume(run: rd.RunDir, resume, out: TextIO) -> Path | None:
    """The checkpoint --resume names (None for a fresh run); MedtuneError when there is none or the run dir is taken.
    The latest complete checkpoint is taken, and a newer incomplete one named with why it was passed over."""
    if not resume:
        run.check_fresh()
        return None
    path = run.latest_checkpoint() if resume is True else Path(resume)
    if not path.exists():
        found = ", ".join(p.name for _, p in run.list_checkpoints()) or "none"
        raise MedtuneError(f"{path}: no such checkpoint (complete checkpoints in {run.checkpoints}: {found})")
    if not (path / "trainer_state.json").is_file():
        raise MedtuneError(f"{path}: not a complete checkpoint (no trainer_state.json)")
    if resume is True:
        for skipped in run.incomplete_checkpoints():
            if _step_of(skipped) > _step_of(path):
                print(f"note: {skipped.name} is not complete (no trainer_state.json): resuming from {path.name}",
                      file=out)
    return path


# what a resume without each state does instead of continuing the same curve
WITHOUT_STATE = {"optimizer.pt": "the optimizer starts afresh (its moments at zero)",
                 "scheduler.pt": "the learning-rate schedule starts over",
                 "rng_state.pth": "dropout and sampling draw other random numbers"}


def missing_resume_state(checkpoint: Path | None, inexact_ok: bool, out: TextIO) -> list[str]:
    """The states an exact resume needs that the checkpoint lacks: refused, unless the user accepts an inexact
    resume, which is then said on the console and recorded in run.json."""
    missing = rd.missing_state(checkpoint) if checkpoint is not None else []
    if not missing:
        return []
    effects = "; ".join(WITHOUT_STATE[name] for name in missing)
    if not inexact_ok:
        raise MedtuneError(f"{checkpoint}: no {', '.join(missing)}, so resuming would not continue the same curve "
                           f"({effects}); --allow-inexact-resume resumes anyway and records it in run.json")
    print(f"note: not an exact resume: {checkpoint.name} has no {', '.join(missing)} ({effects})", file=out)
    return missing


def _already_done(tr: TrainingRun) -> bool:
    """True when the checkpoint already holds the whole run (killed before its weights were written).
    A run that finished or stopped early is refused: resuming it would train past its own end."""
    previous = tr.run.info()
    step = rd.read_json(tr.checkpoint / "trainer_state.json").get("global_step", _step_of(tr.checkpoint))
    if previous.get("status") == "early_stopped" and tr.cfg.training.early_stopping_patience is not None:
        best = (previous.get("best") or {}).get("step")
        raise MedtuneError(f"{tr.run.root} stopped early at step {previous.get('global_step')} (best step {best}): "
                           "resuming would stop again; start a new output_dir, or set "
                           "training.early_stopping_patience=null and raise training.max_steps to train on")
    if step < tr.plan.total_steps:
        return False
    if previous.get("status") == "early_stopped":  # its adapter is the best step's: never overwrite it
        raise MedtuneError(f"{tr.run.root} stopped early at step {step} and training.max_steps "
                           f"({tr.cfg.training.max_steps}) leaves nothing after it: raise training.max_steps above "
                           f"{step} to train on, or start a new output_dir")
    if previous.get("status") == "completed":
        raise MedtuneError(f"{tr.run.root} finished at step {step} of {tr.plan.total_steps}: nothing to resume; "
                           f"raise training.max_steps (now {tr.cfg.training.max_steps}) to train further")
    return True


def _write_start(tr: TrainingRun) -> None:
    """Files written before the first step: config, prepared data, run.json (status running)."""
    from medtune.data.outputs import overwritten_input, write_outputs
    from medtune.data.pipeline import prepared_dir

    cfg, run = tr.cfg, tr.run
    run.root.mkdir(parents=True, exist_ok=True)
    run.clear_staging()
    data_hash = rd.data_hash(tr.encoded)
    previous = run.info()
    if tr.checkpoint is not None:
        _check_same_run(tr, previous, data_hash)
        rd.truncate_metrics(run.metrics, _step_of(tr.checkpoint))
    else:  # check_fresh found no checkpoint or weights; what an unfinished earlier start logged goes too
        run.clear_logs()
    resumed = [*previous.get("resumed_from", []), *([str(tr.checkpoint)] if tr.checkpoint else [])]
    tr.info = {"status": "running", "stage": cfg.training.stage, "seed": cfg.seed, "data_hash": data_hash,
               "versions": rd.versions(),
               "git_commit": rd.git_commit(), "data": {**tr.data.__dict__, "dropped": _counts(tr.data.dropped)},
               "working_dir": os.getcwd(),  # what relative paths in config.yaml mean
               "resumed_from": resumed}
    inexact = [*previous.get("inexact_resume", []),
               *([{"checkpoint": str(tr.checkpoint), "missing": tr.missing_state}] if tr.missing_state else [])]
    if inexact:
        tr.info["inexact_resume"] = inexact
    rd.write_json(run.run_json, tr.info)  # first: a folder with run.json is a run (RunDir.foreign_entries)
    cfg.save(run.config)
    if not overwritten_input(prepared_dir(cfg), cfg):  # training on prepare's own files: they stay as they are
        write_outputs(tr.prepared, cfg, prepared_dir(cfg), tr.tokenizer)


def _check_same_run(tr: TrainingRun, previous: dict, data_hash: str) -> None:
    """Resuming continues the same curve only on the same data; config changes are named, not refused."""
    if previous.get("data_hash") and previous["data_hash"] != data_hash:
        raise MedtuneError("the prepared data differs from the run being resumed (data hash changed): resume with "
                           "the same data and data/model settings, or start a new output_dir")
    if tr.run.config.is_file():
        changed = _diff(yaml.safe_load(tr.run.config.read_text(encoding="utf-8")), tr.cfg.to_dict())
        if changed:
            print(f"note: resuming with a config that differs from the run's in {', '.join(changed)}", file=tr.out)


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(a) | set(b)):
        if isinstance(a.get(k), dict) and isinstance(b.get(k), dict):
            out += _diff(a[k], b[k], f"{prefix}{k}.")
        elif a.get(k) != b.get(k):
            out.append(f"{prefix}{k}")
    return out


def _step_of(checkpoint: Path) -> int:
    match = rd.CHECKPOINT.match(checkpoint.name)
    return int(match.group(1)) if match else 0


def _counts(dropped: dict) -> dict:
    return {split: {reason: len(v) for reason, v in reasons.items()} for split, reasons in dropped.items()}


def _fit(tr: TrainingRun, callbacks) -> Result:
    from medtune.training.faults import run_trainer
    from medtune.training.tracking import start_tracking

    tracking = start_tracking(tr.cfg, tr.run, tr.cfg.tracking.run_name or tr.run.root.resolve().name)
    built = None
    try:
        built = _build(tr, [*tracking.callbacks, *callbacks], tracking.where)
        run_trainer(tr.cfg, built, tr.checkpoint)
    except BaseException as error:  # run.json must not say "running" for a run that is over
        _record_failure(tr, built.trainer.state.global_step if built else 0, error)
        raise
    finally:
        tracking.finish()
    return _finish(tr, built)


def _build(tr: TrainingRun, callbacks: list, where: str | None):
    """The trainer, and the start-up lines that say what it will do."""
    from medtune.training.trainer import startup_lines

    datasets = tr.stage.datasets(tr)
    built = tr.stage.build(tr, datasets, callbacks)
    tr.info.update(built.info)
    from medtune.training.backend import resolve

    lines = startup_lines(tr.cfg, built.info, tr.stage.data_line(tr.data), tr.plan) + tr.stage.lines(tr.cfg, tr.plan)
    lines.insert(1, resolve(tr.cfg).line())  # which library trains, and why
    lines += [f"note: {n}" for n in tr.prepared.report["notes"]]  # what prepare would have said
    lines += [f"tracking: {where}"] if where else []
    lines += [f"resuming from {tr.checkpoint}"] if tr.checkpoint else []
    print("\n".join(lines), file=tr.out, flush=True)
    return built


def _record_failure(tr: TrainingRun, step: int, error: BaseException) -> None:
    if not distributed.is_main():
        return
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    message = str(error).splitlines()[0][:300] if str(error) else type(error).__name__
    tr.info.update(status=status, global_step=step, error=message, wall_s=round(time.time() - tr.started, 1))
    rd.write_json(tr.run.run_json, tr.info)


def _complete_from_checkpoint(tr: TrainingRun) -> Result:
    """The run was killed after its last checkpoint but before its weights were written: write them from it."""
    state = rd.read_json(tr.checkpoint / "trainer_state.json")
    weights = tr.run.weights_dir(tr.cfg.method)
    if not distributed.is_main():
        return Result(tr.run.root, "completed", state.get("global_step", 0), weights)
    rd.copy_weights(tr.checkpoint, weights)
    info = tr.run.info()
    info.update(status="completed", global_step=state.get("global_step"), epoch=state.get("epoch"),
                weights_dir=weights.name, weights_from_best=False, completed_from=str(tr.checkpoint))
    write_run_report(tr.cfg, tr.run, info)
    print(f"{tr.checkpoint} already holds the whole run (step {state.get('global_step')}): wrote {weights} from "
          "it, nothing trained", file=tr.out, flush=True)
    return Result(tr.run.root, "completed", state.get("global_step", 0), weights, info)


def _finish(tr: TrainingRun, built) -> Result:
    """Weights (best or final), then run.json, plots and the model card."""
    from medtune.models.load import peak_memory_mb
    from medtune.training.callbacks import best_eval

    state = built.trainer.state
    objective = tr.stage.objective
    best = best_eval(state.log_history, objective)
    status = "early_stopped" if built.early_stopping and built.early_stopping.stopped_at else "completed"
    weights = tr.run.weights_dir(tr.cfg.method)
    from_best = bool(built.early_stopping and best)
    _save_weights(built.trainer, tr.run, weights, best[0] if from_best else None)
    if not distributed.is_main():
        return Result(tr.run.root, status, state.global_step, weights)
    tr.run.clear_staging()  # only the Trainer's own model card is left there
    tr.info.update(status=status, global_step=state.global_step, epoch=state.epoch, weights_dir=weights.name,
                   weights_from_best=from_best, best={"step": best[0], objective.label: best[1]} if best else None,
                   wall_s=round(time.time() - tr.started, 1), peak_mem_mb=round(peak_memory_mb(), 1))
    write_run_report(tr.cfg, tr.run, tr.info)
    print(_final_line(tr.info, weights, best if from_best else None, objective), file=tr.out, flush=True)
    return Result(tr.run.root, status, state.global_step, weights, tr.info)


def _save_weights(trainer, run: rd.RunDir, weights: Path, best_step: int | None) -> None:
    """Every rank calls this (FSDP and DeepSpeed gather the weights for the save); rank 0 writes them."""
    if best_step is not None:  # early stopping: the best checkpoint's weights, never rotated away
        if distributed.is_main():
            rd.copy_weights(run.checkpoints / f"checkpoint-{best_step}", weights)
        distributed.barrier()
        return
    tmp = weights.with_name(f".{weights.name}.tmp")
    if getattr(trainer, "is_fsdp_enabled", False):  # as PEFT's FSDP example: the final weights whole, not sharded
        trainer.accelerator.state.fsdp_plugin.set_state_dict_type("FULL_STATE_DICT")
    trainer.save_model(str(tmp))
    distributed.barrier()
    if distributed.is_main():
        rd.replace_dir(tmp, weights)


def _final_line(info: dict, weights: Path, best, objective) -> str:
    what = objective.label.removeprefix("val_")  # loss (SFT) or reward (GRPO)
    how = f"best validation {what} {best[1]:.4f} at step {best[0]}" if best else f"step {info['global_step']}"
    stop = "stopped early" if info["status"] == "early_stopped" else "done"
    line = f"{stop} after {info['global_step']} steps in {info['wall_s']:.0f}s; {weights} holds the {how}"
    start, final = info.get(f"start_val_{what}"), info.get(f"final_val_{what}")
    if start is not None and final is not None:
        line += f" (validation {what} {start:.4f} before training -> {final:.4f})"
    if info.get("inexact_resume"):
        line += "; resumed without the full training state (run.json: inexact_resume)"
    return line
