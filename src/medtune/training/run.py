"""One training run from a config: prepare, build, fit, and leave a complete run directory behind."""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from medtune.config import Config
from medtune.errors import DataError, MedtuneError
from medtune.training import args as args_mod
from medtune.training import rundir as rd
from medtune.training.data import DataSummary, summarize, to_dataset
from medtune.training.report import model_card, plot_losses


@dataclass
class Result:
    run_dir: Path
    status: str  # completed | early_stopped | dry_run
    global_step: int = 0
    weights_dir: Path | None = None
    info: dict | None = None


def train(cfg: Config, resume: str | bool | None = None, dry_run: bool = False, callbacks=(), stream=None) -> Result:
    """Train as the config says. `resume`: True = latest checkpoint, a path = that checkpoint."""
    out = stream or sys.stdout
    run = rd.RunDir(Path(cfg.output_dir))
    tokenizer, prepared, encoded, data = _prepare(cfg)
    plan = args_mod.plan(cfg, bool(encoded.get("valid")), len(encoded["train"]), args_mod.varlen_attention(cfg))
    if dry_run:
        return _dry_run(cfg, run, prepared, data, plan, out)
    checkpoint = _checkpoint_to_resume(run, resume)
    started = time.time()
    if checkpoint is not None and _already_done(cfg, run, checkpoint, plan):
        return _complete_from_checkpoint(cfg, run, checkpoint, started, out)
    info = _start(cfg, run, prepared, tokenizer, encoded, data, checkpoint, out)
    return _fit(cfg, run, encoded, tokenizer, plan, data, info, checkpoint, callbacks, out, started)


def _prepare(cfg: Config):
    """The same prepare step as `medtune prepare`, then only examples with something to learn."""
    from medtune.models.load import load_tokenizer
    from medtune.prepare import prepare

    tokenizer = load_tokenizer(cfg.model)
    prepared = prepare(cfg, tokenizer)
    encoded, dropped = trainable(prepared.encoded, prepared.report.get("dropped", {}))
    data = summarize(encoded, dropped)
    if not encoded.get("train"):
        raise DataError(f"no training example left after the length policy ({data.line()}): raise "
                        f"model.max_length (now {cfg.model.max_length}) or set data.overlong=truncate")
    return tokenizer, prepared, encoded, data


def trainable(encoded: dict, dropped: dict) -> tuple[dict, dict]:
    """Drop (and count) examples with no trained token after position 0: the first token is never a target."""
    kept, lost = {}, {name: dict(reasons) for name, reasons in dropped.items()}
    for name, examples in encoded.items():
        kept[name] = [e for e in examples if 1 in e.mask[1:]]
        gone = [e.source for e in examples if 1 not in e.mask[1:]]
        if gone:
            lost.setdefault(name, {}).setdefault("no_trained_tokens", []).extend(gone)
    return kept, lost


def _checkpoint_to_resume(run: rd.RunDir, resume) -> Path | None:
    if not resume:
        run.check_fresh()
        return None
    path = run.latest_checkpoint() if resume is True else Path(resume)
    if not path.exists():
        found = ", ".join(p.name for _, p in run.list_checkpoints()) or "none"
        raise MedtuneError(f"{path}: no such checkpoint (complete checkpoints in {run.checkpoints}: {found})")
    if not (path / "trainer_state.json").is_file():
        raise MedtuneError(f"{path}: not a complete checkpoint (no trainer_state.json)")
    return path


def _already_done(cfg: Config, run: rd.RunDir, checkpoint: Path, plan) -> bool:
    """True when the checkpoint already holds the whole run (killed before its weights were written).
    A run that finished or stopped early is refused: resuming it would train past its own end."""
    previous = rd.read_json(run.run_json)
    step = rd.read_json(checkpoint / "trainer_state.json").get("global_step", _step_of(checkpoint))
    if previous.get("status") == "early_stopped" and cfg.training.early_stopping_patience is not None:
        best = (previous.get("best") or {}).get("step")
        raise MedtuneError(f"{run.root} stopped early at step {previous.get('global_step')} (best step {best}): "
                           "resuming would stop again; start a new output_dir, or set "
                           "training.early_stopping_patience=null and raise training.max_steps to train on")
    if step < plan.total_steps:
        return False
    if previous.get("status") == "completed":
        raise MedtuneError(f"{run.root} finished at step {step} of {plan.total_steps}: nothing to resume; raise "
                           f"training.max_steps (now {cfg.training.max_steps}) to train further")
    return True


def _start(cfg: Config, run: rd.RunDir, prepared, tokenizer, encoded, data: DataSummary, checkpoint, out) -> dict:
    """Files written before the first step: config, prepared data, run.json (status running)."""
    from medtune.prepare import overwritten_input, prepared_dir, write_outputs

    run.root.mkdir(parents=True, exist_ok=True)
    run.clear_staging()
    data_hash = rd.data_hash(encoded)
    previous = rd.read_json(run.run_json)
    if checkpoint is not None:
        _check_same_run(cfg, run, previous, data_hash, out)
        rd.truncate_metrics(run.metrics, _step_of(checkpoint))
    else:  # check_fresh found no checkpoint or weights; what an unfinished earlier start logged goes too
        run.clear_logs()
    cfg.save(run.root / "config.yaml")
    if not overwritten_input(prepared_dir(cfg), cfg):  # training on prepare's own files: they stay as they are
        write_outputs(prepared, cfg, prepared_dir(cfg), tokenizer)
    info = {"status": "running", "seed": cfg.seed, "data_hash": data_hash, "versions": rd.versions(),
            "git_commit": rd.git_commit(), "data": {**data.__dict__, "dropped": _counts(data.dropped)},
            "working_dir": os.getcwd(),  # what relative paths in config.yaml mean
            "resumed_from": [*previous.get("resumed_from", []), *([str(checkpoint)] if checkpoint else [])]}
    rd.write_json(run.run_json, info)
    return info


def _check_same_run(cfg: Config, run: rd.RunDir, previous: dict, data_hash: str, out) -> None:
    """Resuming continues the same curve only on the same data; config changes are named, not refused."""
    if previous.get("data_hash") and previous["data_hash"] != data_hash:
        raise MedtuneError("the prepared data differs from the run being resumed (data hash changed): resume with "
                           "the same data and data/model settings, or start a new output_dir")
    saved = run.root / "config.yaml"
    if saved.is_file():
        changed = _diff(yaml.safe_load(saved.read_text(encoding="utf-8")), cfg.to_dict())
        if changed:
            print(f"note: resuming with a config that differs from the run's in {', '.join(changed)}", file=out)


def _diff(a: dict, b: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(a) | set(b))
    out = []
    for k in keys:
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


def _fit(cfg, run, encoded, tokenizer, plan, data, info, checkpoint, callbacks, out, started) -> Result:
    from medtune.training.faults import run_trainer
    from medtune.training.tracking import start_tracking

    datasets = {name: to_dataset(e) for name, e in encoded.items() if e}
    tracking = start_tracking(cfg, run, cfg.tracking.run_name or run.root.resolve().name)
    built = None
    try:
        built = _build(cfg, run, datasets, tokenizer, plan, data, info, checkpoint,
                       [*tracking.callbacks, *callbacks], tracking.where, out)
        run_trainer(cfg, built, checkpoint)
    except BaseException as error:  # run.json must not say "running" for a run that is over
        _record_failure(run, info, built.trainer.state.global_step if built else 0, error, started)
        raise
    finally:
        tracking.finish()
    return _finish(cfg, run, built, info, started, out)


def _build(cfg, run, datasets, tokenizer, plan, data, info, checkpoint, callbacks, where, out):
    """The trainer, and the start-up lines that say what it will do."""
    from medtune.training.trainer import build, startup_lines

    built = build(cfg, run, datasets, tokenizer, plan, callbacks, out)
    info.update(built.info)
    lines = startup_lines(cfg, built.info, data.line(), plan)
    lines += [f"tracking: {where}"] if where else []
    lines += [f"resuming from {checkpoint}"] if checkpoint else []
    print("\n".join(lines), file=out, flush=True)
    return built


def _record_failure(run: rd.RunDir, info: dict, step: int, error: BaseException, started: float) -> None:
    status = "interrupted" if isinstance(error, KeyboardInterrupt) else "failed"
    info.update(status=status, global_step=step, error=str(error).splitlines()[0][:300] if str(error) else
                type(error).__name__, wall_s=round(time.time() - started, 1))
    rd.write_json(run.run_json, info)


def _complete_from_checkpoint(cfg: Config, run: rd.RunDir, checkpoint: Path, started: float, out) -> Result:
    """The run was killed after its last checkpoint but before its weights were written: write them from it."""
    state = rd.read_json(checkpoint / "trainer_state.json")
    weights = run.weights_dir(cfg.method)
    rd.copy_weights(checkpoint, weights)
    info = rd.read_json(run.run_json)
    rows = rd.read_metrics(run.metrics)
    info.update(status="completed", global_step=state.get("global_step"), epoch=state.get("epoch"),
                weights_dir=weights.name, weights_from_best=False, final_train_loss=_last(rows, "train_loss"),
                final_val_loss=_last(rows, "val_loss"), completed_from=str(checkpoint))
    rd.write_json(run.run_json, info)
    plot_losses(rows, run.plots / "loss.png", f"{Path(cfg.output_dir).name}: {cfg.model.name}")
    (run.root / "README.md").write_text(model_card(cfg, info), encoding="utf-8")
    print(f"{checkpoint} already holds the whole run (step {state.get('global_step')}): wrote {weights} from it, "
          "nothing trained", file=out, flush=True)
    return Result(run.root, "completed", state.get("global_step", 0), weights, info)


def _finish(cfg: Config, run: rd.RunDir, built, info: dict, started: float, out) -> Result:
    """Weights (best or final), run.json, plots and the model card."""
    from medtune.models.load import peak_memory_mb
    from medtune.training.callbacks import best_eval

    state = built.trainer.state
    best = best_eval(state.log_history)
    status = "early_stopped" if built.early_stopping and built.early_stopping.stopped_at else "completed"
    weights = run.weights_dir(cfg.method)
    from_best = bool(built.early_stopping and best)
    _save_weights(built.trainer, run, weights, best[0] if from_best else None)
    run.clear_staging()  # only the Trainer's own model card is left there
    rows = rd.read_metrics(run.metrics)
    info.update(status=status, global_step=state.global_step, epoch=state.epoch, weights_dir=weights.name,
                weights_from_best=from_best, best={"step": best[0], "val_loss": best[1]} if best else None,
                final_train_loss=_last(rows, "train_loss"), final_val_loss=_last(rows, "val_loss"),
                wall_s=round(time.time() - started, 1), peak_mem_mb=round(peak_memory_mb(), 1))
    rd.write_json(run.run_json, info)
    plot_losses(rows, run.plots / "loss.png", f"{Path(cfg.output_dir).name}: {cfg.model.name}")
    (run.root / "README.md").write_text(model_card(cfg, info), encoding="utf-8")
    print(_final_line(info, weights, best if from_best else None), file=out, flush=True)
    return Result(run.root, status, state.global_step, weights, info)


def _save_weights(trainer, run: rd.RunDir, weights: Path, best_step: int | None) -> None:
    if best_step is not None:  # early stopping: the best checkpoint's weights, never rotated away
        rd.copy_weights(run.checkpoints / f"checkpoint-{best_step}", weights)
        return
    tmp = weights.with_name(f".{weights.name}.tmp")
    trainer.save_model(str(tmp))
    rd.replace_dir(tmp, weights)


def _last(rows: list[dict], key: str):
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def _final_line(info: dict, weights: Path, best) -> str:
    how = f"best validation loss {best[1]:.4f} at step {best[0]}" if best else f"step {info['global_step']}"
    stop = "stopped early" if info["status"] == "early_stopped" else "done"
    return f"{stop} after {info['global_step']} steps in {info['wall_s']:.0f}s; {weights} holds the {how}"


def _dry_run(cfg: Config, run: rd.RunDir, prepared, data: DataSummary, plan, out) -> Result:
    from medtune.prepare import summary
    from medtune.training.dryrun import describe_targets

    print("# resolved config\n" + yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True), file=out)
    print(summary(prepared.report), file=out)
    info = describe_targets(cfg, plan)
    from medtune.training.trainer import startup_lines

    print("\n".join(["# would train", *startup_lines(cfg, info, data.line(), plan),
                     f"run directory: {run.root}", "dry run: nothing trained, nothing written"]), file=out)
    return Result(run.root, "dry_run", info=info)
