"""Experiment trackers, set up from the config through each library's API (no environment variables are read
or written here, so no secret can flow from the environment into the run directory).

tensorboard writes to <output_dir>/tracking/tensorboard; wandb runs offline by default under <output_dir>/tracking
(no account needed); mlflow logs to a local SQLite store, <output_dir>/tracking/mlflow.db (mlflow's file store is
retired), unless tracking.uri is set.
The transformers integrations then log into the run opened here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field

from medtune.config import Config
from medtune.errors import ConfigError
from medtune.rundir import RunDir
from medtune.training import distributed


@dataclass
class Tracking:
    callbacks: list = field(default_factory=list)
    finish: Callable[[], None] = lambda: None
    where: str | None = None  # shown at start-up


def start_tracking(cfg: Config, run: RunDir, run_name: str) -> Tracking:
    """The tracker, opened by rank 0 alone: one run per training, however many processes (the Trainer's own
    integration callbacks log from rank 0 only)."""
    kind = cfg.tracking.report_to
    if kind == "none" or not distributed.is_main():
        return Tracking()
    _require(cfg)
    folder = run.root / "tracking"
    folder.mkdir(parents=True, exist_ok=True)
    return {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}[kind](cfg, folder, run_name)


def _require(cfg: Config) -> None:
    kind = cfg.tracking.report_to
    extra = "tracking" if kind == "tensorboard" else kind
    # the default mlflow store is SQLite, which mlflow-skinny reaches only through sqlalchemy + alembic
    needs = [kind] + (["sqlalchemy", "alembic"] if kind == "mlflow" and not cfg.tracking.uri else [])
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise ConfigError(f"tracking.report_to = {kind} needs the {' and '.join(missing)} package"
                          f"{'s' if len(missing) > 1 else ''}: pip install 'medtune[{extra}]' (or report_to none)")


def _tensorboard(cfg: Config, folder, run_name: str) -> Tracking:
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    writer = SummaryWriter(log_dir=str(folder / "tensorboard"))
    return Tracking([TensorBoardCallback(tb_writer=writer)], writer.close, str(folder / "tensorboard"))


def _wandb(cfg: Config, folder, run_name: str) -> Tracking:
    import wandb

    # the Trainer's WandbCallback reuses an open run, so this init decides project, folder and mode
    wandb.init(project=cfg.tracking.project, name=run_name, dir=str(folder), mode=cfg.tracking.mode,
               config=cfg.to_dict(), reinit="finish_previous")
    return Tracking([], wandb.finish, f"wandb ({cfg.tracking.mode}) in {folder}")


def _mlflow(cfg: Config, folder, run_name: str) -> Tracking:
    import mlflow

    uri = cfg.tracking.uri or f"sqlite:///{(folder / 'mlflow.db').resolve()}"
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(cfg.tracking.project)
    mlflow.start_run(run_name=run_name)  # the Trainer's MLflowCallback logs into the active run
    return Tracking([], mlflow.end_run, f"mlflow at {uri}")
