"""`medtune prepare [CONFIG] [key=value ...]`: load, detect, normalise, split, template and audit a dataset, and write
train/valid/test.jsonl (read by medtune train and by `mlx_lm lora --data DIR`) plus prepare_report.json."""

from __future__ import annotations

import argparse
from pathlib import Path

from medtune.commands.args import Flag, add_config_arguments, add_flags, config_from_args, flag_values

FLAGS = [
    Flag("--data", "data.train_file", {"help": "training data file, folder or hub id"}),
    Flag("--format", "data.format"),
    Flag("--template", "data.template"),
    Flag("--split", "data.split"),
    Flag("--seed", "seed", {"type": int}),
    Flag("--limit", "data.limit", {"type": int}),
    Flag("--model", "model.name", {"help": "model or tokenizer for the length audit"}),
    Flag("--max-length", "model.max_length", {"type": int}),
    Flag("--leakage", "data.leakage_files", {"action": "append", "metavar": "FILE",
                                              "help": "evaluation file whose questions must not be in training "
                                                      "(repeatable)"}),
    Flag("--output-format", "data.output_format", {"choices": ["chat", "text", "completions"]}),
    Flag("--skip-bad", "data.skip_bad", {"action": "store_true"}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Load a dataset (jsonl/json/csv/parquet, a save_to_disk folder or a hub id), detect its layout, turn every "
        "record into system/user/assistant messages with <think>reasoning</think>answer, remove duplicates, split "
        "it with a seed, audit token lengths against model.max_length, and write train/valid/test .jsonl files "
        "(read by medtune train and by mlx_lm lora --data DIR) plus prepare_report.json."
    )
    add_config_arguments(parser)
    add_flags(parser, FLAGS)
    parser.add_argument("--out", help="output folder (default data.prepared_dir or <output_dir>/data)")


def main(args: argparse.Namespace) -> int:
    from medtune.data.outputs import check_out_dir, write_outputs
    from medtune.data.pipeline import prepare, prepared_dir
    from medtune.data.report import summary

    cfg = config_from_args(args, flag_values(args, FLAGS))
    tokenizer = None
    if cfg.model.name:
        from medtune.models.load import load_tokenizer

        tokenizer = load_tokenizer(cfg.model)
    out = Path(args.out) if args.out else prepared_dir(cfg)
    check_out_dir(out, cfg)  # before the work, not after it
    prepared = prepare(cfg, tokenizer)
    paths = write_outputs(prepared, cfg, out, tokenizer)
    print(summary(prepared.report))
    print("wrote " + ", ".join(str(p) for p in paths))
    counts = prepared.report["counts"]
    if not counts.get("kept", counts["splits"]).get("train"):  # what train would refuse: say so now, exit 2
        from medtune.data.report import length_advice
        from medtune.errors import DataError

        raise DataError(f"{out / 'train.jsonl'} holds no training example after the length policy: "
                        f"{length_advice(prepared.report, cfg.model.max_length)}")
    return 0
