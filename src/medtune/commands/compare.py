"""`medtune compare`: several runs or models on the same items with the same seed, as a study report with numbers
and their uncertainty.

    medtune compare runs/phi3-mini-medical runs/mistral-7b-medical --task medqa --task pubmedqa --limit 500
    medtune compare runs/quickstart smollm2-135m-instruct --task src/medtune/assets/medical_o1_heldout.jsonl

Each input is a run directory (its config.yaml, run.json, metrics.jsonl and eval/) or a model (hub id, folder,
.gguf file, built-in name). Evaluation settings not given as flags come from the first run's config and are the
same for every input; a model given by name answers with the first run's prompts and generation settings (as
eval's --compare-base does for a run's base). A run's eval/items.jsonl is reused when it holds exactly the
requested items under those settings; otherwise the input is evaluated (into OUT/evals/<name>/, which the next
compare reuses). Writes report.md, results.json and plots/ into --out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# flag -> (config key, argparse settings); a flag not given leaves the first run's config value (else the default)
FLAGS = {
    "--task": ("eval.tasks", {"action": "append", "metavar": "TASK",
                              "help": "medqa, medmcqa, pubmedqa, mmlu_medical, an MCQ, open-ended or safety file, "
                                      "or a hub dataset id; repeat for several"}),
    "--limit": ("eval.limit", {"type": int, "metavar": "N", "help": "the first N items of each task"}),
    "--mode": ("eval.mode", {"choices": ("loglik", "generate"),
                             "help": "multiple choice by log-likelihood, or generated and parsed"}),
    "--data-dir": ("eval.data_dir", {"metavar": "DIR", "help": "folder holding <task>.jsonl for the built-in "
                                                               "task names (else they load from the hub)"}),
    "--max-tokens": ("eval.max_tokens", {"type": int, "metavar": "N",
                                         "help": "generation budget per item of the generated tasks"}),
    "--seed": ("seed", {"type": int, "help": "seed of sampling and of the paired bootstrap"}),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("inputs", nargs="+", metavar="RUN_OR_MODEL",
                        help="run directories or models (hub id, folder, .gguf file, built-in name); two or more")
    group = parser.add_argument_group("evaluation, the same for every input (default: the first run's config)")
    for flag, (key, kwargs) in FLAGS.items():
        group.add_argument(flag, dest=_dest(flag), **{**kwargs, "help": f"{kwargs['help']} ({key})"})
    parser.add_argument("--out", default="compare", help="where report.md, results.json and plots/ go "
                                                         "(default ./compare)")


def _dest(flag: str) -> str:
    return flag.lstrip("-").replace("-", "_")


def flag_values(args: argparse.Namespace) -> dict:
    """{config key: value} of the flags given."""
    return {key: getattr(args, _dest(flag)) for flag, (key, _) in FLAGS.items()
            if getattr(args, _dest(flag)) is not None}


def main(args: argparse.Namespace) -> int:
    from medtune.compare.report import console_lines
    from medtune.compare.study import compare
    from medtune.rundir import check_out_folder

    check_out_folder(args.out, "--out")
    results, written = compare(args.inputs, flag_values(args), Path(args.out), note=_note)
    print("\n".join(console_lines(results, written)))
    return 0


def _note(text: str) -> None:
    print(f"medtune compare: note: {text}", file=sys.stderr)
