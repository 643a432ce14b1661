"""Command-line options the text-producing verbs share (generate, chat, serve), and the engine they make."""

from __future__ import annotations

import argparse

from medtune.cliargs import add_config_arguments, load_config
from medtune.inference.params import DEFAULT_MAX_TOKENS, SamplingParams


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "-m", help="base model or merged model: hub id or folder (sets model.name)")
    group.add_argument("--adapter", help="PEFT adapter folder to apply on the base model")
    group.add_argument("--run", help="run directory: its config (template, system prompt, base model) and adapter")
    group.add_argument("--system", help="system prompt (default: the run's data.system_prompt, else "
                                        "safety.system_prompt; '' for none)")
    group.add_argument("--extra-eos-token", action="append", default=[], metavar="TOKEN",
                       help="also stop at this token or string (repeatable), e.g. '<|end|>'")
    add_config_arguments(parser)


def add_sampling_arguments(parser: argparse.ArgumentParser, max_tokens: int = DEFAULT_MAX_TOKENS) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--max-tokens", type=int, default=max_tokens,
                       help=f"new tokens at most, reasoning included (default {max_tokens})")
    group.add_argument("--temperature", "--temp", type=float, default=0.0, help="0 = greedy (default 0)")
    group.add_argument("--top-p", type=float, default=1.0, help="nucleus sampling (default 1 = off)")
    group.add_argument("--top-k", type=int, default=0, help="keep the k likeliest tokens (default 0 = off)")
    group.add_argument("--repetition-penalty", type=float, default=1.0, help="default 1 = off")
    group.add_argument("--seed", type=int, help="seed for sampling (default: the config's seed)")


def sampling_params(args: argparse.Namespace) -> SamplingParams:
    return SamplingParams(max_tokens=args.max_tokens, temperature=args.temperature, top_p=args.top_p,
                          top_k=args.top_k, repetition_penalty=args.repetition_penalty).check()


def load_engine(args: argparse.Namespace):
    """The engine for --model/--adapter/--run, with the config found beside the weights unless --config is
    given; the config's seed seeds the process, so a sampled run repeats."""
    import torch

    from medtune.inference.engine import Engine
    from medtune.inference.loading import find_config

    if args.config is None and all("=" in item for item in args.items):  # no config named: the one beside
        args.config = find_config(args.model, args.adapter, args.run)
    cfg = load_config(args, {"model.name": args.model, "seed": getattr(args, "seed", None)})
    torch.manual_seed(cfg.seed)
    return Engine.load(adapter=args.adapter, run=args.run, config=cfg, system_prompt=args.system,
                       extra_eos_tokens=args.extra_eos_token)
