"""The `medtune` command: a table of verbs, each imported only when it runs (so --help stays fast)."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from medtune import __version__
from medtune.errors import MedtuneError

# verb -> (module with add_arguments(parser) and main(args), one-line help). Only built verbs are listed.
VERBS: dict[str, tuple[str, str]] = {
    "prepare": ("medtune.prepare", "load, detect, normalise, template, split and audit a dataset"),
    "new-model": ("medtune.models.tiny", "build a small random model + locally trained tokenizer"),
    "train": ("medtune.train", "LoRA / QLoRA / full fine-tuning with checkpoints, resume and early stopping"),
    "eval": ("medtune.evaluation.cli",
             "MedQA, MedMCQA, PubMedQA, MMLU-medical accuracy, judge, similarity, base vs tuned"),
    "generate": ("medtune.inference.generate", "one prompt, one answer: reasoning set apart, then statistics"),
    "chat": ("medtune.inference.chat", "interactive assistant in the terminal (scriptable through standard input)"),
    "serve": ("medtune.inference.server", "OpenAI-compatible HTTP API (chat, completions, streaming, API key)"),
}


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medtune",
        description="Fine-tune open LLMs into medical reasoning assistants: one YAML config, one command line.",
        epilog="Run 'medtune VERB --help' for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"medtune {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == verb:  # only the chosen verb's module is imported
            importlib.import_module(module).add_arguments(p)
    return parser


def quiet_libraries() -> None:
    """Library chatter that says nothing to a medtune user: weight-loading progress bars, a bitsandbytes notice
    about an optional CPU kernel package, and deprecation warnings raised inside PEFT/transformers."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|trl)\.")
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*")
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the CLI's --help works before the heavy dependencies are installed
        return
    hf_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args = parser.parse_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    quiet_libraries()
    try:
        return importlib.import_module(VERBS[args.verb][0]).main(args) or 0
    except MedtuneError as e:
        print(f"medtune {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nmedtune {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `medtune ... | head`: the reader left; point stdout at nothing so exit is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
