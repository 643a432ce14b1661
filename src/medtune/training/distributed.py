"""Which process this is when a launcher (accelerate launch, torchrun, `medtune train --nproc N`) started several.

Every process prepares the same data and trains its shard; rank 0 alone writes the run directory, the metrics and
the console; barriers make sure a checkpoint holds every rank's files before it gets its final name. A single
process (no launcher) never creates a process group: all of this is then a no-op.

The launcher says how many processes there are through torch.distributed's own variables (WORLD_SIZE, RANK,
LOCAL_RANK), and accelerate's config says FSDP or DeepSpeed through ACCELERATE_USE_FSDP / ACCELERATE_USE_DEEPSPEED:
these are the launchers' protocol, read here in one place, not medtune settings.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import sys

from medtune.errors import MedtuneError

PR_SET_PDEATHSIG = 1  # linux/prctl.h


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def sharded() -> str | None:
    """"fsdp" or "deepspeed" when the launcher's accelerate config shards the model, else None (DDP, or one
    process): a sharded model is loaded without a device map, and accelerate places its shards."""
    for name, variable in (("fsdp", "ACCELERATE_USE_FSDP"), ("deepspeed", "ACCELERATE_USE_DEEPSPEED")):
        if os.environ.get(variable, "false").lower() in ("1", "true", "yes"):
            return name
    return None


def shards_parameters() -> bool:
    """True when each process holds a shard of every parameter: FSDP, or DeepSpeed ZeRO-3 (ZeRO-1/2 keep the
    weights whole). For ZeRO-3 this asks transformers, whose training arguments (built before the model, see
    training.trainer.build) read the stage from accelerate's DeepSpeed config."""
    kind = sharded()
    if kind == "deepspeed":
        from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

        return is_deepspeed_zero3_enabled()
    return kind == "fsdp"


def check_one_gpu_per_process(device: str) -> None:
    """Refuse, before anything loads, one process that sees several GPUs: transformers' Trainer would wrap the
    model in nn.DataParallel, which TRL's SFTTrainer refuses, but only after the weights have loaded."""
    if not device.startswith("cuda") or world_size() > 1:
        return
    import torch

    count = torch.cuda.device_count()
    if count > 1:
        raise MedtuneError(f"{count} GPUs are visible to this one process: train on all of them with "
                           f"`medtune train CONFIG --nproc {count}` (one process per GPU), or on one with "
                           "CUDA_VISIBLE_DEVICES=0")


def device_for(device: str) -> str:
    """Each process its own GPU (cuda:LOCAL_RANK); one process keeps the device it was given."""
    if device == "cuda" and world_size() > 1:
        return f"cuda:{local_rank()}"
    return device


@functools.lru_cache(maxsize=1)
def _state():
    """accelerate's process state, which the Trainer shares: it creates the process group (gloo on CPU)."""
    from accelerate import PartialState

    return PartialState()


def barrier() -> None:
    """Every process waits here for the others (nothing to wait for in a single process)."""
    if world_size() > 1:
        _state().wait_for_everyone()


def agree(flag: bool) -> bool:
    """True on every process when it is True on any: one rank's reason to stop stops them all."""
    if world_size() == 1:
        return flag
    import torch
    import torch.distributed as dist

    _state()
    value = torch.tensor([1 if flag else 0], device=_state().device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def die_with_parent() -> None:
    """Have the kernel kill this process when its parent dies (Linux; elsewhere nothing). torchrun starts each
    rank in a session of its own, so a launcher killed with SIGKILL (by a job scheduler, the OOM killer, a user)
    would otherwise leave its ranks training on as orphans, racing the run that resumes them."""
    if not sys.platform.startswith("linux"):
        return
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def exit_with_launcher() -> None:
    """A rank of several dies with its launcher (see die_with_parent); a single process has none to watch."""
    if world_size() > 1:
        parent = os.getppid()
        die_with_parent()
        if os.getppid() != parent:  # the launcher was already gone before the kernel was asked
            os._exit(1)
