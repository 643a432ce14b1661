"""`medtune train --nproc N`: start N training processes on this machine with the launcher made for it.

Plain data parallel (DDP, a GPU per process, or CPU processes with gloo) goes through torchrun; an accelerate
config (FSDP, DeepSpeed, several machines) through `accelerate launch`, which reads the config's sharding
settings. Either way each process runs `python -m medtune train` with the same arguments, and this process only
waits for them and hands back their exit status.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from medtune.errors import MedtuneError


def command(nproc: int | None, accelerate_config: str | None, train_argv: list[str]) -> list[str]:
    """The launcher command line that runs `medtune train train_argv` on nproc processes."""
    if nproc is not None and nproc < 1:
        raise MedtuneError(f"--nproc {nproc}: give 1 or more processes")
    module = ["-m", "medtune", "train", *train_argv]
    if accelerate_config:
        if not os.path.isfile(accelerate_config):
            raise MedtuneError(f"--accelerate-config {accelerate_config}: no such file (see configs/accelerate/)")
        count = ["--num_processes", str(nproc)] if nproc else []
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", accelerate_config, *count,
                *module]
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *module]


def run(cmd: list[str]) -> int:
    """Run the launcher in this process group (a kill of the group ends every rank) and return its status; Ctrl-C
    is passed on so the ranks stop together."""
    from medtune.training.distributed import die_with_parent

    # preexec_fn is unsafe with threads; `medtune train` launches before torch or anything threaded is imported
    child = subprocess.Popen(cmd, preexec_fn=die_with_parent)  # killed with medtune, its ranks die with it
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGINT)
        child.wait()
        raise
