"""The `medtune` command: a table of verbs, each in medtune.commands, imported only when it runs (so --help stays
fast); one error policy: a MedtuneError is one line and exit 2, Ctrl-C exit 130, a closed pipe exit 141."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import warnings

from medtune import __version__
from medtune.errors import MedtuneError

# verb -> one-line help; the module is medtune.commands.<verb with - as _>. Only built verbs are listed.
VERBS: dict[str, str] = {
    "prepare": "load, detect, normalise, template, split and audit a dataset",
    "new-model": "build a small random model + locally trained tokenizer",
    "train": "LoRA / QLoRA / full fine-tuning with checkpoints, resume and early stopping",
    "eval": "MedQA, MedMCQA, PubMedQA, MMLU-medical accuracy, judge, similarity, base vs tuned",
    "generate": "one prompt, one answer: reasoning set apart, then statistics",
    "chat": "interactive assistant in the terminal (scriptable through standard input)",
    "serve": "OpenAI-compatible HTTP API (chat, completions, streaming, API key)",
    "ui": "web chat page: streamed answers, reasoning apart, safety notices, two models side by side",
    "merge": "fuse an adapter into its base: a plain transformers folder, checked against base + adapter",
    "export": "LoRA adapters between PEFT and mlx-lm both ways; GGUF files for llama.cpp and Ollama",
    "push": "a run's adapter or merged model to the Hugging Face Hub, with a model card",
    "compare": "several runs or models on the same items: paired statistics, findings, plots",
    "config": "the resolved config as YAML, or every config key with its type, default and help (--list)",
}


def module_of(verb: str) -> str:
    return f"medtune.commands.{verb.replace('-', '_')}"


def build_parser(verb: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="medtune",
        description="Fine-tune open LLMs into medical reasoning assistants: one YAML config, one command line.",
        epilog="Run 'medtune VERB --help' for the options of a verb.",
    )
    parser.add_argument("--version", action="version", version=f"medtune {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, help_text in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        if name == verb:  # only the chosen verb's module is imported
            importlib.import_module(module_of(name)).add_arguments(p)
    return parser


BULK_VERBS = {"eval", "compare"}  # verbs that screen whole files of requests
USES_DATASETS = {"prepare", "train", "eval"}  # verbs that import datasets anyway (0.7 s of import for the others)


def quiet_libraries(verb: str | None = None) -> None:
    """Library chatter that says nothing to a medtune user (weight-loading and dataset progress bars, info logs, a
    bitsandbytes notice about an optional kernel, deprecations raised inside PEFT/transformers); medtune's own
    warnings on one line each."""
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    logging.getLogger("trl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft|trl)\.")
    warnings.filterwarnings("ignore", message=r".*is_gradient_checkpointing.*")
    log = logging.getLogger("medtune")
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(_Formatter())
        log.addHandler(handler)
        log.setLevel(logging.WARNING)
    # the safety layer's refusals (category and layer, never the text unless safety.log_text) are the operator's
    # log where requests come one at a time; eval and compare write each row's verdict to items.jsonl instead of
    # a line per refused row across the progress bar
    logging.getLogger("medtune.safety").setLevel(logging.WARNING if verb in BULK_VERBS else logging.INFO)
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # the CLI's --help works before the heavy dependencies are installed
        return
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    if verb in USES_DATASETS:
        import datasets

        datasets.disable_progress_bars()


class _Formatter(logging.Formatter):
    """'warning: ...' for warnings; the safety layer's info lines as they are (they start with 'safety:')."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"warning: {text}" if record.levelno >= logging.WARNING else text


class _StderrHandler(logging.Handler):
    """Writes to sys.stderr as it is at each warning (a StreamHandler keeps the stream of its first call)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(self.format(record), file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(verb if verb in VERBS else None)
    args, extra = parser.parse_known_args(argv)
    # argparse fills a nargs="*" positional from its first run of words only: words after a flag
    # ("--max-tokens 3 PROMPT") come back unparsed, and belong with the rest ([CONFIG] key=value ... PROMPT)
    if extra and hasattr(args, "items") and not any(e.startswith("-") for e in extra):
        args.items = [*(args.items or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.verb is None:
        parser.print_help()
        return 0
    quiet_libraries(args.verb)
    try:
        return importlib.import_module(module_of(args.verb)).main(args) or 0
    except MedtuneError as e:
        print(f"medtune {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nmedtune {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `medtune ... | head`: the reader left; point stdout at nothing so exit is quiet
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except OSError as e:  # a path the user gave that cannot be written or read (an --out that is a file, ...)
        print(f"medtune {args.verb}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
