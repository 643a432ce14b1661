"""`medtune train CONFIG [key=value ...]`: LoRA, QLoRA or full fine-tuning with TRL's SFTTrainer.

Loss is taken on the assistant turn only (reasoning, answer and end token), from the masks prepare computes;
checkpoints are written whole, `--resume` continues the same curve, early stopping keeps the best adapter.

On several processes: `medtune train CONFIG --nproc N` (DDP through torchrun: N GPUs, or N CPU processes), or
`--accelerate-config configs/accelerate/FILE.yaml` (FSDP, DeepSpeed ZeRO, several machines), or any launcher
by hand: `accelerate launch -m medtune train CONFIG`, `torchrun --nproc_per_node N -m medtune train CONFIG`.
Rank 0 alone writes the run directory and the console lines.
"""

from __future__ import annotations

import argparse
import sys

from medtune.commands.args import (
    OVERRIDE,
    Flag,
    add_config_arguments,
    add_flags,
    config_from_args,
    flag_values,
    is_config_path,
)
from medtune.errors import ConfigError
from medtune.training import distributed

FLAGS = [
    Flag("--model", "model.name"),
    Flag("--data", "data.train_file"),
    Flag("--output-dir", "output_dir"),
    Flag("--method", "training.method", {"choices": ["lora", "qlora", "full"]}),
    Flag("--max-steps", "training.max_steps", {"type": int}),
    Flag("--learning-rate", "training.learning_rate", {"type": float}),
    Flag("--seed", "seed", {"type": int}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fine-tune a causal LM on medical reasoning data. Runs the prepare step (template, split, length audit), "
        "then LoRA / QLoRA / full training with SFTTrainer, writing config.yaml, run.json, metrics.jsonl, "
        "checkpoints/checkpoint-<step>/, adapter/ (model/ for full), plots/loss.png and README.md into output_dir. "
        "With training.stage=grpo: reinforcement learning with GRPOTrainer on verifiable problems (exam MCQs, open "
        "problems with a reference) and the rewards of the rl section, usually from an SFT run's adapter "
        "(rl.init_from), with each reward in metrics.jsonl and plots/rewards.png (configs/quickstart-grpo.yaml). "
        "On several processes: --nproc N (DDP through torchrun), --accelerate-config FILE (FSDP, DeepSpeed, several "
        "machines, through accelerate launch), or any launcher by hand (accelerate launch -m medtune train CONFIG; "
        "torchrun --nproc_per_node N -m medtune train CONFIG); rank 0 alone writes the run directory."
    )
    add_config_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the config, load the tokenizer, prepare and audit the data, print what "
                             "would train, and exit without training")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="PATH",
                        help="continue from the latest checkpoint of output_dir, or from checkpoint PATH")
    parser.add_argument("--allow-inexact-resume", action="store_true",
                        help="with --resume: continue from a checkpoint that lacks its optimizer, scheduler or RNG "
                             "state (refused otherwise, as the curve would not continue exactly); the console and "
                             "run.json say so")
    parser.add_argument("--nproc", type=int, metavar="N",
                        help="train on N processes of this machine, data parallel (one per GPU; on a CPU, N "
                             "processes with the gloo backend): started with torchrun, or with accelerate launch "
                             "when --accelerate-config is given. The effective batch is batch x accumulation x N")
    parser.add_argument("--accelerate-config", metavar="FILE",
                        help="an accelerate config to launch with (configs/accelerate/: ddp, fsdp2-lora, "
                             "fsdp2-full, fsdp2-qlora, deepspeed-zero2, deepspeed-zero3, *-offload, multi-node)")
    add_flags(parser, FLAGS)


def main(args: argparse.Namespace) -> int:
    from medtune.training.run import train

    _resume_is_not_a_config(args)
    if (args.nproc or args.accelerate_config) and not args.dry_run and distributed.world_size() == 1:
        from medtune.training import launch

        config_from_args(args, flag_values(args, FLAGS))  # a bad config fails here, once, not in N processes
        return launch.run(launch.command(args.nproc, args.accelerate_config, _child_argv(args)))
    cfg = config_from_args(args, flag_values(args, FLAGS))
    if args.allow_inexact_resume and not args.resume:
        raise ConfigError("--allow-inexact-resume goes with --resume")
    train(cfg, resume=args.resume, dry_run=args.dry_run, inexact_resume=args.allow_inexact_resume)
    return 0


def _child_argv(args: argparse.Namespace) -> list[str]:
    """What each launched process is given: the same config, overrides (flags as key=value) and resume."""
    argv = ["--config", args.config] if args.config else []
    argv += [*args.items, *(f"{key}={value}" for key, value in flag_values(args, FLAGS).items())]
    if args.resume:
        argv += ["--resume"] if args.resume is True else [f"--resume={args.resume}"]
    argv += ["--allow-inexact-resume"] if args.allow_inexact_resume else []
    return argv


def _resume_is_not_a_config(args: argparse.Namespace) -> None:
    """`--resume` takes an optional PATH, so argparse hands it whatever follows: a config file or a key=value
    override written after --resume goes back to the positional arguments it belongs to."""
    value = args.resume
    if isinstance(value, str) and (OVERRIDE.match(value) or is_config_path(value)):
        args.items = [*args.items, value] if OVERRIDE.match(value) else [value, *args.items]
        args.resume = True


if __name__ == "__main__":
    from medtune.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
