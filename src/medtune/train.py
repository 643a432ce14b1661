"""`medtune train CONFIG [key=value ...]`: LoRA, QLoRA or full fine-tuning with TRL's SFTTrainer.

Loss is taken on the assistant turn only (reasoning, answer and end token), from the masks `medtune prepare`
computes; checkpoints are written whole, `--resume` continues the same curve, early stopping keeps the best adapter.
"""

from __future__ import annotations

import argparse
import logging
import sys

from medtune.cliargs import add_config_arguments, load_config

FLAG_KEYS = {
    "model": "model.name", "data": "data.train_file", "output_dir": "output_dir", "method": "training.method",
    "max_steps": "training.max_steps", "learning_rate": "training.learning_rate", "seed": "seed",
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Fine-tune a causal LM on medical reasoning data. Runs the prepare step (template, split, length audit), "
        "then LoRA / QLoRA / full training with SFTTrainer, writing config.yaml, run.json, metrics.jsonl, "
        "checkpoints/checkpoint-<step>/, adapter/ (model/ for full), plots/loss.png and README.md into output_dir."
    )
    add_config_arguments(parser)
    parser.add_argument("--dry-run", action="store_true",
                        help="validate the config, load the tokenizer, prepare and audit the data, print what "
                             "would train, and exit without training")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="PATH",
                        help="continue from the latest checkpoint of output_dir, or from checkpoint PATH")
    parser.add_argument("--model", help="base model: hub id or local folder (model.name)")
    parser.add_argument("--data", help="training data (data.train_file)")
    parser.add_argument("--output-dir", help="run directory (output_dir)")
    parser.add_argument("--method", choices=["lora", "qlora", "full"], help="fine-tuning method (training.method)")
    parser.add_argument("--max-steps", type=int, help="optimizer steps (training.max_steps)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (training.learning_rate)")
    parser.add_argument("--seed", type=int, help="seed (seed)")


def main(args: argparse.Namespace) -> int:
    from medtune.training.run import train

    _resume_is_not_a_config(args)
    cfg = load_config(args, {key: getattr(args, flag) for flag, key in FLAG_KEYS.items()})
    quiet_libraries()
    train(cfg, resume=args.resume, dry_run=args.dry_run)
    return 0


def _resume_is_not_a_config(args: argparse.Namespace) -> None:
    """`--resume` takes an optional PATH, so argparse hands it whatever follows: a config file or a key=value
    override written after --resume goes back to the positional arguments it belongs to."""
    value = args.resume
    if isinstance(value, str) and ("=" in value or value.endswith((".yaml", ".yml"))):
        args.items = [value, *args.items] if "=" not in value else [*args.items, value]
        args.resume = True


def quiet_libraries() -> None:
    """Library chatter off (progress bars of dataset maps, info logs); medtune's own warnings on one line each."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.logging.set_verbosity_error()
    logging.getLogger("trl").setLevel(logging.ERROR)
    log = logging.getLogger("medtune")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("warning: %(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.WARNING)


class _StderrHandler(logging.Handler):
    """Writes to sys.stderr as it is at each warning (a StreamHandler keeps the stream of its first call)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


if __name__ == "__main__":
    from medtune.cli import main as cli_main

    sys.exit(cli_main(["train", *sys.argv[1:]]))
