"""Which library trains (training.backend): torch (transformers, PEFT, TRL) or mlx (mlx-lm, Apple silicon).

`auto` picks mlx on a Mac with Apple silicon where mlx-lm imports, torch everywhere else; the start-up lines say
which and why. mlx asked for where mlx-lm is missing is one line naming the extra to install.
"""

from __future__ import annotations

import importlib.util
import platform
from dataclasses import dataclass

from medtune.config import Config
from medtune.errors import ConfigError, MedtuneError

INSTALL = "pip install 'medtune[mlx]'"


@dataclass(frozen=True)
class Backend:
    name: str  # "torch" or "mlx"
    why: str  # for the start-up line

    def line(self) -> str:
        return f"backend: {self.name} ({self.why})"


def apple_silicon(system: str | None = None, machine: str | None = None) -> bool:
    return (system or platform.system()) == "Darwin" and (machine or platform.machine()) == "arm64"


def mlx_installed() -> bool:
    return importlib.util.find_spec("mlx") is not None and importlib.util.find_spec("mlx_lm") is not None


def resolve(cfg: Config, on_apple_silicon: bool | None = None, has_mlx: bool | None = None) -> Backend:
    """The backend the config asks for, `auto` resolved; mlx without mlx-lm is a MedtuneError naming the install."""
    asked = cfg.training.backend
    mac = apple_silicon() if on_apple_silicon is None else on_apple_silicon
    mlx = mlx_installed() if has_mlx is None else has_mlx
    if asked == "torch":
        return Backend("torch", "training.backend: torch")
    if asked == "mlx":
        if not mlx:
            raise MedtuneError(f"training.backend: mlx needs mlx-lm, which is not installed here: {INSTALL}")
        check_supported(cfg)
        return Backend("mlx", "training.backend: mlx" + ("" if mac else "; not Apple silicon: mlx runs on its CPU "
                                                                       "backend, slowly") + _notes(cfg))
    if mac and mlx:
        try:
            check_supported(cfg)
        except ConfigError as unsupported:  # auto trains what mlx cannot on torch, and says why
            return Backend("torch", f"auto: {str(unsupported).split(': set ')[0]}")
        return Backend("mlx", "auto: Apple silicon with mlx-lm installed" + _notes(cfg))
    return Backend("torch", "auto: " + ("mlx-lm is not installed: " + INSTALL if mac else "not Apple silicon"))


def check_supported(cfg: Config) -> None:
    """What the mlx backend does not do yet, refused before anything loads rather than ignored (every
    lora.method trains there: lora, DoRA, qlora on a 4-bit mlx base, full)."""
    t = cfg.training
    missing = []
    if t.stage != "sft":
        missing.append(f"training.stage: {t.stage} (the mlx backend trains sft only)")
    if t.optimizer not in ("adamw", "adam", "sgd", "adamw_8bit"):
        missing.append(f"training.optimizer: {t.optimizer}")
    if t.kernels == "liger":
        missing.append("training.kernels: liger (Triton kernels for CUDA GPUs)")
    if t.lr_scheduler not in ("constant", "linear", "cosine"):
        missing.append(f"training.lr_scheduler: {t.lr_scheduler} (constant, linear or cosine)")
    if missing:
        raise ConfigError("training.backend mlx does not support " + "; ".join(missing) + ": set "
                          "training.backend=torch for these")


def _notes(cfg: Config) -> str:
    """What mlx runs differently from the config's words, said on the start-up line."""
    if cfg.training.optimizer == "adamw_8bit":  # bitsandbytes' 8-bit states exist for CUDA only
        return ("; training.optimizer adamw_8bit runs as AdamW with full-precision states (mlx has no 8-bit "
                "optimizer; an adapter's states are small)")
    return ""
