"""`medtune export`: LoRA adapters between PEFT and mlx-lm, and GGUF files for llama.cpp / Ollama / LM Studio.

    medtune export --run DIR --to mlx --out DIR            # then: mlx_lm.generate --model BASE --adapter-path DIR
    medtune export --model M --adapter A --to mlx --out DIR
    medtune export --from mlx ADAPTER_DIR --model M --out DIR   # an mlx_lm.lora run's ./adapters, as PEFT
    medtune export --run DIR --to gguf --quant q8_0 --out DIR   # then: ollama create NAME -f DIR/Modelfile

MLX: the weights are renamed and transposed, never changed; the base model is read for its block count only.
GGUF: the adapter is merged (as medtune merge does), converted by llama.cpp's own convert_hf_to_gguf.py (from a
llama.cpp checkout given with --llama-cpp, else fetched once from llama-cpp-python's source package), quantized
by llama.cpp's quantizer for types past f32/f16/bf16/q8_0 (needs llama-cpp-python), and opened by llama.cpp
(llama-cpp-python, else transformers' GGUF loader) to check its tokens and next-token predictions against the
merged model. An Ollama Modelfile with the chat template, system prompt and stop tokens is written beside it.
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
    parser.add_argument("--to", choices=("mlx", "gguf"), help="mlx: the PEFT adapter for mlx-lm; gguf: the merged "
                        "model as one GGUF file + Ollama Modelfile")
    parser.add_argument("--from", dest="source", nargs=2, metavar=("FORMAT", "DIR"),
                        help="read an adapter of FORMAT (mlx) from DIR and write it as PEFT")
    parser.add_argument("--out", required=True, help="folder to write (must not exist, or be empty)")
    gguf = parser.add_argument_group("GGUF (--to gguf)")
    gguf.add_argument("--quant", default="f16", metavar="TYPE",
                      help="f16 (default), bf16, f32, q8_0 by the converter; q4_k_m, q5_k_m, q6_k, q4_0, ... by "
                           "llama.cpp's quantizer (needs llama-cpp-python)")
    gguf.add_argument("--llama-cpp", metavar="DIR", help="a llama.cpp checkout whose convert_hf_to_gguf.py to use "
                      "(default: the one llama-cpp-python packages, fetched once into ~/.cache/medtune/llama.cpp)")
    gguf.add_argument("--no-check", action="store_true", help="skip opening the file in llama.cpp / transformers "
                      "to compare it with the merged model (large models: it loads the model in float32)")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from medtune.export import mlx
    from medtune.export.atomic import check_out
    from medtune.inference import weights
    from medtune.models.load import load_model_config

    out = Path(args.out)
    check_out(out)
    if bool(args.to) == bool(args.source):
        raise MedtuneError("give --to mlx|gguf (PEFT -> mlx-lm or GGUF) or --from mlx DIR (mlx-lm -> PEFT)")
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
    if args.to == "gguf":
        return _gguf(source, out, args)
    if source.adapter is None:
        raise MedtuneError("nothing to export: give --run DIR (with an adapter) or --model M --adapter A")
    blocks = load_model_config(source.config.model).num_hidden_layers
    info = mlx.peft_to_mlx(source.adapter, out, blocks)
    lora = info["lora_parameters"]
    print(f"wrote mlx-lm adapter {out}: rank {lora['rank']}, scale {lora['scale']:g}, top {info['num_layers']} of "
          f"{blocks} blocks, keys {', '.join(lora['keys'])}")
    print(f"use it: mlx_lm.generate --model BASE_FOLDER --adapter-path {out} (BASE_FOLDER: {source.config.model.name})")
    return 0


def _gguf(source, out: Path, args: argparse.Namespace) -> int:
    from medtune.export import gguf

    result = gguf.export(source, out, args.quant, args.llama_cpp, check=not args.no_check)
    print(f"wrote {result.file} ({result.quant.upper()}, {result.size_mb:.0f} MB) and {out / 'Modelfile'} in "
          f"{result.seconds:.0f}s")
    if not args.no_check:
        what = "the merged model" if source.adapter is not None else "the model in transformers"
        print(f"checked in {result.runtime}: same token ids {_yes(result.same_token_ids)}, next-token argmax as "
              f"{what} at {result.argmax_agreement:.0%} of positions (max |logit difference| "
              f"{result.max_logit_diff:.3g}), same greedy tokens {_yes(result.same_greedy_tokens)}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"use it: ollama create {source.name} -f {out / 'Modelfile'}   or   llama-cli -m {result.file}")
    return 0


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"
