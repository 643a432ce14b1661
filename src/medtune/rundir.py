"""The run directory's layout and its files: training writes it, inference and evaluation read it. The files inside
data/ and eval/ are named by the modules that write them (data/outputs.py, evaluation/report.py).

    <output_dir>/config.yaml  run.json  metrics.jsonl  README.md  plots/loss.png  data/  eval/  tracking/
                 checkpoints/checkpoint-<step>/   adapter/ (lora, qlora) or model/ (full)   merged/ (push --merged)

Checkpoints are made whole in checkpoints/.incoming before they get their name; JSON files are replaced atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from medtune.errors import MedtuneError

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
STAGING = ".incoming"  # the Trainer writes here; a checkpoint is renamed out of it once complete
STATE_FILES = {"optimizer.pt", "scheduler.pt", "rng_state.pth", "trainer_state.json", "training_args.bin",
               "scaler.pt", "optimizer.safetensors"}
PACKAGES = ("medtune", "torch", "transformers", "peft", "trl", "accelerate", "datasets", "bitsandbytes")
CONFIG_FILE = "config.yaml"
ADAPTER_FILE = "adapter_config.json"  # what makes a folder a PEFT adapter
PREPARE_REPORT = "prepare_report.json"  # what marks a folder medtune prepare wrote
WEIGHTS_DIRS = ("adapter", "model")


@dataclass(frozen=True)
class RunDir:
    root: Path

    def __post_init__(self):
        object.__setattr__(self, "root", Path(self.root))

    @property
    def config(self) -> Path:
        return self.root / CONFIG_FILE

    @property
    def run_json(self) -> Path:
        return self.root / "run.json"

    @property
    def metrics(self) -> Path:
        return self.root / "metrics.jsonl"

    @property
    def readme(self) -> Path:
        return self.root / "README.md"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def loss_plot(self) -> Path:
        return self.plots / "loss.png"

    @property
    def data(self) -> Path:
        """Where training writes the prepared split files (data.prepared_dir overrides it)."""
        return self.root / "data"

    @property
    def eval(self) -> Path:
        return self.root / "eval"

    @property
    def tracking(self) -> Path:
        return self.root / "tracking"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    @property
    def staging(self) -> Path:
        return self.checkpoints / STAGING

    @property
    def adapter(self) -> Path:
        return self.root / "adapter"

    @property
    def model(self) -> Path:
        """A full fine-tune's whole model."""
        return self.root / "model"

    def weights_dir(self, method: str) -> Path:
        """adapter/ for lora and qlora; model/ for a full fine-tune (a whole model is not an adapter)."""
        return self.model if method == "full" else self.adapter

    def is_run(self) -> bool:
        return self.config.is_file()

    def info(self) -> dict:
        """run.json, or {} when there is none yet."""
        return read_json(self.run_json)

    def check_folder(self) -> None:
        """output_dir must be a folder (or not exist yet): found before the prepare step, not after it."""
        check_out_folder(self.root, "output_dir")

    def check_fresh(self) -> None:
        """A new run never mixes into an old one (its checkpoints would be resumed by mistake), nor into a folder
        of the user's own (training writes README.md, config.yaml, ... there)."""
        if self.list_checkpoints() or self.adapter.exists() or self.model.exists():
            raise MedtuneError(f"{self.root} already holds a run: continue it with --resume, or choose another "
                               "output_dir (or remove that folder)")
        foreign = self.foreign_entries()
        if foreign:
            shown = ", ".join(foreign[:4]) + (f", ... ({len(foreign)} in all)" if len(foreign) > 4 else "")
            raise MedtuneError(f"{self.root} holds files that are not a medtune run ({shown}): choose an empty or "
                               "new output_dir")

    def foreign_entries(self) -> list[str]:
        """What sits in output_dir that no medtune run put there. A run's folder has run.json (written before
        anything else); before the first run it may hold prepare's data/ (`medtune prepare CONFIG` writes there)."""
        if self.run_json.is_file() or not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if not (p == self.data and _prepare_folder(p)))

    def list_checkpoints(self) -> list[tuple[int, Path]]:
        """Complete checkpoints, by step (a partial write sits in .incoming and is never listed)."""
        if not self.checkpoints.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.checkpoints.iterdir()
                 if (m := CHECKPOINT.match(p.name)) and (p / "trainer_state.json").is_file()]
        return sorted(found)

    def incomplete_checkpoints(self) -> list[Path]:
        """checkpoint-<step> folders without their trainer_state.json (a kill before the rename, or a hand-made
        copy): list_checkpoints leaves them out, and resume says so."""
        if not self.checkpoints.is_dir():
            return []
        return sorted((p for p in self.checkpoints.iterdir() if CHECKPOINT.match(p.name) and p.is_dir()
                       and not (p / "trainer_state.json").is_file()), key=lambda p: int(CHECKPOINT.match(p.name)[1]))

    def latest_checkpoint(self) -> Path:
        found = self.list_checkpoints()
        if not found:
            raise MedtuneError(f"nothing to resume: {self.checkpoints} holds no complete checkpoint")
        return found[-1][1]

    def clear_logs(self) -> None:
        """metrics.jsonl, plots/ and tracking/ of an earlier start that left no checkpoint: a fresh run's own."""
        self.metrics.unlink(missing_ok=True)
        shutil.rmtree(self.plots, ignore_errors=True)
        shutil.rmtree(self.tracking, ignore_errors=True)

    def clear_staging(self) -> None:
        shutil.rmtree(self.staging, ignore_errors=True)

    def publish_checkpoint(self, step: int) -> Path:
        """Move a finished checkpoint from staging to its final name in one rename."""
        src, dst = self.staging / f"checkpoint-{step}", self.checkpoints / f"checkpoint-{step}"
        fsync_tree(src)  # the rename must never land before the files' contents
        replace_dir(src, dst)
        return dst

    def rotate(self, keep_last: int | None, keep_step: int | None) -> None:
        """Delete all but the newest `keep_last` checkpoints, always sparing the best one (`keep_step`)."""
        if not keep_last:
            return
        found = self.list_checkpoints()
        for step, path in found[:-keep_last]:
            if step != keep_step:
                shutil.rmtree(path)


def _prepare_folder(folder: Path) -> bool:
    """A folder `medtune prepare` wrote (its report is there), or an empty one."""
    return folder.is_dir() and ((folder / PREPARE_REPORT).is_file() or not any(folder.iterdir()))


# what an exact resume reads besides the weights and trainer_state.json: the state's name -> the files that hold it
# (one process or DDP; FSDP's optimizer file or sharded folder; DeepSpeed's own global_step folder)
# The mlx backend's optimizer.safetensors holds all three: the moments, the step its schedule is a function of, and
# no random state to keep, since it seeds each step from training.seed and the step (training/mlx_trainer.py).
EXACT_STATE = {
    "optimizer.pt": ("optimizer.pt", "optimizer.bin", "optimizer_0", "global_step*", "optimizer.safetensors"),
    "scheduler.pt": ("scheduler.pt", "global_step*", "optimizer.safetensors"),
    "rng_state.pth": ("rng_state.pth", "rng_state_*.pth", "optimizer.safetensors"),
}


def missing_state(checkpoint: Path) -> list[str]:
    """The states of EXACT_STATE a checkpoint lacks: resuming without them does not continue the same curve
    (transformers' Trainer starts a fresh optimizer or schedule without a word)."""
    return [name for name, patterns in EXACT_STATE.items()
            if not any(next(checkpoint.glob(pattern), None) for pattern in patterns)]


def replace_dir(src: Path, dst: Path) -> None:
    """Put folder src at dst; an existing dst is set aside first and only removed once src is in place."""
    old = dst.with_name(f".{dst.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if dst.exists():
        os.replace(dst, old)
    os.replace(src, dst)
    shutil.rmtree(old, ignore_errors=True)


def copy_weights(checkpoint: Path, dst: Path) -> None:
    """The model files of a checkpoint (adapter or full weights, tokenizer) copied to dst, atomically."""
    tmp = dst.with_name(f".{dst.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(checkpoint, tmp, ignore=lambda _d, names: [n for n in names if n in STATE_FILES])
    replace_dir(tmp, dst)


def fsync_tree(folder: Path) -> None:
    """Every file under folder flushed to disk: a rename that publishes the folder must not land before them."""
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb") as f:
                os.fsync(f.fileno())


# ---------------------------------------------------------------- metrics.jsonl


def append_metrics(path: Path, row: dict) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """On resume: forget what was logged after the checkpoint, so the curve continues without duplicates."""
    rows = [r for r in read_metrics(path) if r.get("step", 0) <= step]
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    os.replace(tmp, path)


# ---------------------------------------------------------------- run.json


def write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def versions() -> dict:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit() -> str | None:
    """The medtune source commit (with -dirty when edited), or None outside a git checkout."""
    here = Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if sha.returncode != 0:
        return None
    return sha.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def data_hash(encoded: dict) -> str:
    """sha256 of exactly what is trained and validated on: token ids and loss masks of every example."""
    digest = hashlib.sha256()
    for name in sorted(encoded):
        for e in encoded[name]:
            digest.update(f"{name}|{e.input_ids}|{e.mask}\n".encode())
    return digest.hexdigest()


def check_out_folder(path: Path | str, what: str) -> None:
    """A folder results will be written into: it, or its nearest existing parent, must be a folder. Checked
    before the work, so an --out that is a file does not cost the evaluation that was to be written."""
    path = Path(path)
    existing = next((p for p in (path, *path.parents) if p.exists()), None)
    if existing is not None and not existing.is_dir():
        raise MedtuneError(f"{what} {path}: {existing} exists and is not a folder")
