"""`medtune compare`: several runs or models on the same items with the same seed, as a study report with numbers
and their uncertainty.

    medtune compare runs/phi3-mini-medical runs/mistral-7b-medical --task medqa --task pubmedqa --limit 500
    medtune compare runs/quickstart smollm2-135m-instruct --task src/medtune/assets/medical_o1_heldout.jsonl
    medtune compare runs/a runs/b --config eval.yaml eval.limit=100 eval.batch_size=4   # eval.yaml: an eval section
    medtune compare runs/a runs/b --task medqa --mode generate --engine llama.cpp      # answers from llama.cpp

Each input is a run directory (its config.yaml, run.json, metrics.jsonl and eval/) or a model (hub id, folder,
.gguf file, built-in name). The evaluation settings are the same for every input: those of --config (its seed and
eval section), else of the first run's config, then key=value overrides (set on every input's config), then the
flags below. A model given by name answers with the prompts and generation settings of --config, else of the
first run (as eval's --compare-base does for a run's base). Among the positionals, one ending in .yaml/.yml is
the config file and one of the form dotted.key=value is an override, never an input (write ./name for a folder
so named). A run's eval/items.jsonl is reused when it holds exactly the requested items under those settings;
otherwise the input is evaluated (into OUT/evals/<name>/, which the next compare reuses), its task times starting
after the model is loaded and warmed up. --engine (default transformers, as eval's) says what answers: a stored
evaluation is reused only when it was made on that engine (under llama.cpp, at the same generation.gguf_quant).
Writes report.md, results.json and plots/ into --out.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from medtune.commands.args import add_engine_argument, choose_engine, engine_class, is_config_path, split_items
from medtune.errors import ConfigError

# flag -> (config key, argparse settings); a flag not given leaves the config's value (see the module's help)
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
    # dest "items": the command line hands words given after a flag to it too (cli.main), so inputs and
    # overrides may follow the flags
    parser.add_argument("items", nargs="+", metavar="RUN_OR_MODEL",
                        help="run directories or models (hub id, folder, .gguf file, built-in name), two or more; "
                             "among them, optionally, one config file (.yaml/.yml) and dotted key=value overrides "
                             "such as eval.limit=100, which apply to every input")
    parser.add_argument("--config", "-c", help="YAML config whose seed and eval section are the evaluation settings "
                                               "of every input (default: the first run's config.yaml), and whose "
                                               "prompts a model given by name answers with")
    group = parser.add_argument_group("evaluation, the same for every input (over the config and overrides)")
    for flag, (key, kwargs) in FLAGS.items():
        group.add_argument(flag, dest=_dest(flag), **{**kwargs, "help": f"{kwargs['help']} ({key})"})
    parser.add_argument("--out", default="compare", help="where report.md, results.json and plots/ go "
                                                         "(default ./compare)")
    add_engine_argument(group, "; every input answers on the same engine (vllm: with medtune eval)",
                        default="transformers", engines=("auto", "transformers", "llama.cpp"))


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
    given = split_inputs(args.items, args.config)
    choice = choose_engine(args.engine)
    if choice.why:
        _note(f"engine {choice.name} (auto: {choice.why})")
    results, written = compare(given.inputs, flag_values(args), Path(args.out), note=_note,
                               engine_cls=engine_class(choice.name), config=given.config, overrides=given.overrides)
    print("\n".join(console_lines(results, written)))
    return 0


@dataclass
class Given:
    inputs: list[str]  # runs and models, in the order given
    config: str | None
    overrides: list[str]


def split_inputs(items: list[str], config: str | None = None) -> Given:
    """The positionals sorted into inputs, the one config file and the key=value overrides (see the help), by the
    grammar every verb uses (args.split_items), with what a list of inputs adds to it."""
    found = split_items(items, allow_text=True)  # text: the runs and models
    given = Given([], config, found.overrides)
    for item in found.overrides:
        if Path(item).exists():
            raise ConfigError(f"{item!r} reads as a key=value override, but a file or folder has that name too: "
                              f"write ./{item} to compare it")
    for item in [found.config] * bool(found.config) + found.text:  # in the order given, the config first
        _sort_input(item, given)
    taken = [item for item in items if item not in given.inputs]
    if len(given.inputs) < 2 and taken:  # say why the count is short: a word was read as a setting
        raise ConfigError(f"compare needs at least two runs or models; {', '.join(taken)} "
                          f"{'is' if len(taken) == 1 else 'are'} read as config file and key=value overrides, "
                          "not as inputs")
    return given


def _sort_input(item: str, given: Given) -> None:
    """split_items takes a .yaml as the config only when it is a file (generate's prompt may end in .yaml): for
    compare, any .yaml that is not a folder is the config (a missing one is then named by the config loader)."""
    if is_config_path(item) and not Path(item).is_dir():
        if given.config:
            raise ConfigError(f"two config files given ({given.config}, {item}): give one, with --config or as a "
                              "positional")
        given.config = item
    elif "=" in item and not Path(item).exists():
        raise ConfigError(f"{item!r} is neither a run or model nor a key=value override: an override is a dotted "
                          "config key, =, and its value, with no spaces (e.g. eval.limit=100)")
    else:
        given.inputs.append(item)


def _note(text: str) -> None:
    print(f"medtune compare: note: {text}", file=sys.stderr)
