"""`medtune merge --run DIR | --model M --adapter A --out DIR [--dtype auto|float16|bfloat16|float32]
[--qlora-base dequantized|original]`: fuse the adapter into the base model and write a plain transformers folder
(sharded safetensors, tokenizer and chat template, a generation config with the run's stop tokens, the run's
config.yaml, a model card), then reload it with plain from_pretrained and check its logits and greedy tokens against
base + adapter (a QLoRA run: its 4-bit base + adapter, unless --qlora-base original)."""

from __future__ import annotations

import argparse
from pathlib import Path

from medtune.commands.args import add_config_arguments, config_from_args, given_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--run", help="a medtune run directory (its adapter and config.yaml)")
    parser.add_argument("--model", "-m", help="base model (hub id, folder, .gguf file) with --adapter")
    parser.add_argument("--adapter", help="PEFT adapter folder")
    parser.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    parser.add_argument("--dtype", default="auto", choices=("auto", "float32", "bfloat16", "float16"),
                        help="weights of the merged model (auto: float32; merging itself is always done in "
                             "float32)")
    parser.add_argument("--qlora-base", default="dequantized", choices=("dequantized", "original"),
                        help="a QLoRA run: merge into its base loaded in 4-bit and dequantized, the weights the "
                             "adapter trained against (default), or into the original unquantized base")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from medtune.export.atomic import check_out
    from medtune.export.merge import merge
    from medtune.inference import weights

    out = Path(args.out)
    check_out(out)  # before any weights load
    beside = None if given_config(args) else weights.find_config(args.model, args.adapter, args.run)
    cfg = config_from_args(args, {"model.name": args.model}, beside)
    result = merge(weights.resolve(cfg, args.adapter, args.run), out, args.dtype, args.qlora_base)
    same = "the same" if result.same_greedy_tokens else "different"
    print(f"merged into {out} ({result.dtype}); reloaded with plain from_pretrained: max |logit difference| "
          f"{result.max_logit_diff:.2e} against base + adapter, {same} greedy tokens")
    for note in result.notes:
        print(f"note: {note}")
    return 0
