"""training.kernels: fused GPU kernels for the layers, as TRL offers them, and the loss TRL always chunks.

TRL 1.16's SFTTrainer computes the loss through its own fused LM head (trl.trainer.utils.add_fused_lm_head): the
output projection and the log-softmax run in tiles over the supervised positions only, so the batch x length x
vocabulary logits are never held whole. That part needs no choice and runs on every device. What is left to choose
is the layers' kernels: `liger` applies Liger's Triton kernels (RMSNorm, SwiGLU, RoPE) through the Trainer's
`use_liger_kernel`, with Liger's own fused linear cross-entropy off, as TRL requires, since it would replace TRL's
fused head. TRL marks `use_liger_kernel` deprecated in favour of transformers' Hub kernels (`use_kernels=True`),
which download their code from the Hugging Face Hub when the model loads: that fails on a machine without the Hub
(a cluster node, an air-gapped hospital server), so medtune keeps the package that installs from PyPI.

auto: liger where a CUDA GPU and liger-kernel are present, none elsewhere (Triton kernels need CUDA); the start-up
line says which and why. liger asked for where it cannot run is refused in one line before the model loads.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from medtune.config import Config
from medtune.errors import ConfigError

INSTALL = "pip install liger-kernel"
LOSS = "loss: TRL's chunked LM head (the batch x length x vocabulary logits are never held whole)"


@dataclass(frozen=True)
class Kernels:
    name: str  # "liger" or "none"
    why: str

    def trainer_args(self) -> dict:
        """The Trainer arguments that apply them (SFTConfig / GRPOConfig)."""
        if self.name != "liger":
            return {}
        # TRL refuses Liger's fused linear cross-entropy: it replaces the forward that TRL's fused head patches
        return {"use_liger_kernel": True, "liger_kernel_config": {"fused_linear_cross_entropy": False}}

    def line(self) -> str:
        return f"kernels: {self.name} ({self.why}); {LOSS}"


def liger_installed() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def resolve(cfg: Config, device: str, installed: bool | None = None) -> Kernels:
    """The kernels for a run on `device` ("cuda", "cpu", "mps"); liger where it cannot run is a ConfigError."""
    asked = cfg.training.kernels
    has = liger_installed() if installed is None else installed
    cuda = device.startswith("cuda")
    why_not = None if cuda else f"Liger's Triton kernels need a CUDA GPU, and this run is on {device}"
    if cuda and not has:
        why_not = f"liger-kernel is not installed: {INSTALL}"
    if asked == "none":
        return Kernels("none", "training.kernels: none")
    if asked == "liger":
        if why_not:
            raise ConfigError(f"training.kernels = liger cannot run here: {why_not}; set training.kernels=auto or "
                              "none")
        return Kernels("liger", "training.kernels: liger: RMSNorm, SwiGLU and RoPE from liger-kernel")
    if why_not:
        return Kernels("none", f"auto: {why_not}")
    return Kernels("liger", "auto: a CUDA GPU with liger-kernel: RMSNorm, SwiGLU and RoPE from liger-kernel")
