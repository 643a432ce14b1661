"""`medtune export`: LoRA adapters between PEFT and mlx-lm.

    medtune export --run DIR --to mlx --out DIR            # then: mlx_lm.generate --model BASE --adapter-path DIR
    medtune export --model M --adapter A --to mlx --out DIR
    medtune export --from mlx ADAPTER_DIR --model M --out DIR   # an mlx_lm.lora run's ./adapters, as PEFT

The weights are renamed and transposed, never changed; the base model is read for its block count only.
GGUF export is still to come (medtune merge writes the merged model llama.cpp's converter reads).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from medtune.commands.args import add_config_arguments, config_from_args, given_config
from medtune.errors import MedtuneError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--run", help="a medtune run directory (its adapter and base model)")
    parser.add_argument("--model", "-m", help="the base model (hub id, folder, .gguf file)")
    parser.add_argument("--adapter", help="PEFT adapter folder (with --to)")
    parser.add_argument("--to", choices=("mlx",), help="write the PEFT adapter in this format")
    parser.add_argument("--from", dest="source", nargs=2, metavar=("FORMAT", "DIR"),
                        help="read an adapter of FORMAT (mlx) from DIR and write it as PEFT")
    parser.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from medtune.export import mlx
    from medtune.export.merge import check_out
    from medtune.inference import weights
    from medtune.models.load import load_model_config

    out = Path(args.out)
    check_out(out)
    if bool(args.to) == bool(args.source):
        raise MedtuneError("give --to mlx (PEFT -> mlx-lm) or --from mlx DIR (mlx-lm -> PEFT)")
    beside = None if given_config(args) else weights.find_config(args.model, args.adapter, args.run)
    cfg = config_from_args(args, {"model.name": args.model}, beside)
    if args.source:
        if args.source[0] != "mlx":
            raise MedtuneError(f"--from {args.source[0]}: only mlx adapters are read")
        if not cfg.model.name:
            raise MedtuneError("--from mlx needs --model: the base the mlx-lm adapter was trained on")
        blocks = load_model_config(cfg.model).num_hidden_layers
        info = mlx.mlx_to_peft(Path(args.source[1]), out, cfg.model.name, blocks)
        print(f"wrote PEFT adapter {out}: r {info['r']}, alpha {info['lora_alpha']:g}, "
              f"{', '.join(info['target_modules'])} in blocks {info['first_block']}-{blocks - 1}")
        return 0
    source = weights.resolve(cfg, args.adapter, args.run)
    if source.adapter is None:
        raise MedtuneError("nothing to export: give --run DIR (with an adapter) or --model M --adapter A")
    blocks = load_model_config(source.config.model).num_hidden_layers
    info = mlx.peft_to_mlx(source.adapter, out, blocks)
    lora = info["lora_parameters"]
    print(f"wrote mlx-lm adapter {out}: rank {lora['rank']}, scale {lora['scale']:g}, top {info['num_layers']} of "
          f"{blocks} blocks, keys {', '.join(lora['keys'])}")
    print(f"use it: mlx_lm.generate --model BASE_FOLDER --adapter-path {out} (BASE_FOLDER: {source.config.model.name})")
    return 0
