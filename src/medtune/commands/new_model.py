"""`medtune new-model`: a small random-weight model of a real transformers architecture and a tokenizer trained on
the spot, saved as an ordinary Hugging Face folder (tests, demos, machines without the model hub)."""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

from medtune.commands.args import add_config_arguments, config_from_args
from medtune.errors import MedtuneError
from medtune.models.tiny import ARCHS, BUILD_INFO, SIZES, build_tiny_model


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Build a small random-weight model of a real transformers architecture and a byte-level BPE tokenizer "
        "trained on the spot (chat template, <think> tokens), saved as safetensors in a folder that transformers "
        "and mlx-lm load. For tests, demos and machines without the model hub. With a config and no --out, the "
        "model is written where the config's model.name points."
    )
    add_config_arguments(parser)
    parser.add_argument("--arch", choices=ARCHS, default="llama", help="transformers architecture (default llama)")
    parser.add_argument("--out", help="folder to write the model into (default: the config's model.name)")
    parser.add_argument("--data", help="text to train the tokenizer on: .jsonl (string values) or plain text; "
                                       "default: bundled medical records")
    parser.add_argument("--size", choices=tuple(SIZES), default="tiny",
                        help="tiny (~140k parameters, 2 blocks), small (~2.9M, 4 blocks) or medium (~27M, 4 blocks of "
                             "width 768, for benchmarks)")
    parser.add_argument("--seed", type=int, default=0, help="seed for the random weights")
    parser.add_argument("--pretrain-steps", type=int, default=0, metavar="N",
                        help="warm the model up with N steps of next-token training on the same text, so it writes "
                             "words before any fine-tuning (the demo uses 300; default 0: random weights)")


def main(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    out = build_tiny_model(args.arch, _out_dir(args), args.data, args.size, args.seed, args.pretrain_steps)
    warm = json.loads((out / BUILD_INFO).read_text(encoding="utf-8"))["warm_up"]
    if warm:
        print(f"warm-up: {warm['steps']} steps on {warm['tokens']:,} tokens of text, loss {warm['first_loss']:.2f} "
              f"-> {warm['last_loss']:.2f} in {warm['seconds']:.1f}s")
    params = _count_params(out)
    print(f"new-model: {args.arch} ({args.size}, {params:,} parameters) written to {out} "
          f"in {time.perf_counter() - start:.1f}s")
    return 0


def _out_dir(args: argparse.Namespace) -> str:
    cfg = config_from_args(args) if args.config or args.items else None  # a config given is read, --out or not
    if args.out:
        return args.out
    if cfg is None:
        raise MedtuneError("give --out DIR, or a config whose model.name is the folder to write")
    name = cfg.model.name
    if not name or not name.startswith((".", "/", "~")):
        raise MedtuneError(f"the config's model.name {name!r} is not a local folder path (./..., /...): give --out DIR")
    return str(Path(name).expanduser())


def _count_params(folder: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), framework="pt") as f:
        return sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
