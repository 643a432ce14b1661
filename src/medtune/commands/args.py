"""The command line's shared grammar: `medtune VERB [CONFIG] [key=value ...] [--flags]`.

- one config file (a positional ending in .yaml/.yml, or --config), then dotted overrides such as
  training.learning_rate=1e-4; flags that set a config key say so, with the help text of the config field itself;
- the model and sampling flags of the verbs that produce text (generate, chat, serve, ui), and the engine they make
  (--engine: auto, transformers, llama.cpp, or vLLM).

Precedence: the config file, then key=value overrides, then flags.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from medtune import config as config_mod
from medtune.errors import ConfigError, MedtuneError

OVERRIDE = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*=")  # training.learning_rate=1e-4, not "BP = 150/95"
CONFIG_SUFFIXES = (".yaml", ".yml", ".json")  # JSON is YAML


@dataclass(frozen=True)
class Flag:
    """A flag that sets one config key: its help is that field's own help text."""

    name: str  # --learning-rate
    key: str  # training.learning_rate
    kwargs: dict = field(default_factory=dict)  # type, choices, action, metavar; help= adds to the field's text

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")


def field_help(key: str) -> tuple[str, object]:
    """(help text, default) of a dotted config key."""
    for dotted, default, text in config_mod.describe():
        if dotted == key:
            return text, default
    raise KeyError(key)


def add_flags(parser, flags: list[Flag]) -> None:
    """Each Flag as an argparse option whose value defaults to None (= not given: the config decides)."""
    for flag in flags:
        text, default = field_help(flag.key)
        kwargs = dict(flag.kwargs)
        extra = kwargs.pop("help", "")
        shown = "" if default in (None, "", [], {}) else f", default {default}"
        kwargs.setdefault("default", None)
        parser.add_argument(flag.name, dest=flag.dest, help=f"{extra or text} ({flag.key}{shown})", **kwargs)


def flag_values(args: argparse.Namespace, flags: list[Flag]) -> dict:
    """{dotted key: value} for the flags that were given."""
    return {f.key: getattr(args, f.dest) for f in flags if getattr(args, f.dest, None) is not None}


def add_config_arguments(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    """--config and the positional items; `text` names what a free positional is for (generate's prompt)."""
    parser.add_argument("--config", "-c", help="YAML config file (see configs/ for recipes)")
    what = "[CONFIG] [key=value ...]" + (f" [{text}]" if text else "")
    parser.add_argument("items", nargs="*", metavar=what,
                        help="a config file, then dotted overrides such as training.learning_rate=1e-4"
                             + (f"; anything else is the {text}" if text else ""))


@dataclass
class Items:
    config: str | None
    overrides: list[str]
    text: list[str]  # positionals that are neither a config file nor an override


def is_config_path(item: str) -> bool:
    return item.endswith(CONFIG_SUFFIXES) and "=" not in item


def split_items(items: list[str], allow_text: bool = False) -> Items:
    """Sort the positionals: one config file, key=value overrides, and (when allowed) free text."""
    config, overrides, text = None, [], []
    for item in items:
        if OVERRIDE.match(item):
            overrides.append(item)
        elif config is None and _names_config(item, allow_text):
            config = item
        elif allow_text:
            text.append(item)
        elif _names_config(item, allow_text):
            raise ConfigError(f"two config files given ({config}, {item}): give one, then key=value overrides")
        else:
            raise ConfigError(f"unexpected argument {item!r}: neither a config file (no file of that name) nor a "
                              "key=value override (e.g. training.learning_rate=1e-4)")
    return Items(config, overrides, text)


def _names_config(item: str, allow_text: bool) -> bool:
    """A config file by its name (.yaml, .yml, .json) or, where no free text is taken, any file that exists; where a
    verb takes a prompt, only an existing file with a config's ending (a prompt may end in .yaml)."""
    if allow_text:
        return is_config_path(item) and Path(item).is_file()
    return is_config_path(item) or Path(item).is_file()


def config_from_args(args: argparse.Namespace, values: dict | None = None, beside: Path | None = None,
                     allow_text: bool = False) -> config_mod.Config:
    """The config the command line describes: --config or the positional file (else `beside`, the config found
    next to the weights a text verb loads), the overrides, then the flags' `values` (dotted key -> value)."""
    items = split_items(args.items, allow_text)
    if args.config and items.config:
        raise ConfigError(f"two config files given (--config {args.config} and {items.config}): give one")
    path = args.config or items.config or (str(beside) if beside else None)
    values = {k: v for k, v in (values or {}).items() if v is not None}
    return config_mod.load(path, items.overrides, values)


def given_config(args: argparse.Namespace, allow_text: bool = False) -> bool:
    """True when the command line names a config file itself."""
    return bool(args.config or split_items(args.items, allow_text).config)


# ---------------------------------------------------------------- the verbs that produce text


def add_model_arguments(parser: argparse.ArgumentParser, text: str | None = None) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", "-m", help="base or merged model: hub id, folder, .gguf file or a built-in name "
                                             "(sets model.name)")
    group.add_argument("--adapter", help="PEFT adapter folder to apply on the base model")
    group.add_argument("--run", help="run directory: its config (template, system prompt, base model) and adapter")
    group.add_argument("--system", help="system prompt (default: the one the run trained with, data.system_prompt; "
                                        "'' for none)")
    group.add_argument("--extra-eos-token", action="append", default=[], metavar="TOKEN",
                       help="also stop at this token or string (repeatable), e.g. '<|end|>'")
    add_config_arguments(parser, text)


SAMPLING = [
    Flag("--max-tokens", "generation.max_tokens", {"type": int}),
    Flag("--temperature", "generation.temperature", {"type": float}),
    Flag("--top-p", "generation.top_p", {"type": float}),
    Flag("--top-k", "generation.top_k", {"type": int}),
    Flag("--repetition-penalty", "generation.repetition_penalty", {"type": float}),
    Flag("--seed", "seed", {"type": int, "help": "seed for sampling"}),
]


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags over the config's generation section (the run's own, found beside its weights)."""
    add_flags(parser.add_argument_group("sampling"), SAMPLING)


def sampling_params(cfg: config_mod.Config):
    """The generation section as SamplingParams, checked (bad values fail before any model loads)."""
    from medtune.inference.params import SamplingParams

    g = cfg.generation
    return SamplingParams(max_tokens=g.max_tokens, temperature=g.temperature, top_p=g.top_p, top_k=g.top_k,
                          repetition_penalty=g.repetition_penalty).check()


def engine_config(args: argparse.Namespace, allow_text: bool = False) -> config_mod.Config:
    """The config of the weights a text verb loads: the one named on the command line, else the config.yaml
    beside the weights (so prompts are built as training built them), with overrides and flags applied."""
    from medtune.inference.weights import find_config

    beside = None if given_config(args, allow_text) else find_config(args.model, args.adapter, args.run)
    values = {"model.name": args.model, **flag_values(args, SAMPLING)}
    return config_from_args(args, values, beside, allow_text)


ENGINES = ("auto", "transformers", "llama.cpp", "vllm", "mlx")
AUTO = "auto"


@dataclass(frozen=True)
class EngineChoice:
    name: str  # transformers, llama.cpp or vllm
    why: str  # the start-up line's reason ("" when asked for by name)


def add_engine_argument(parser, extra: str = "", default: str = AUTO, engines: tuple = ENGINES) -> None:
    """--engine: who generates; medtune's prompts, stop tokens, reasoning split and safety layer stay the same."""
    parser.add_argument("--engine", choices=engines, default=default,
                        help=f"what generates (default {default}): auto is mlx on Apple silicon where mlx-lm is "
                             "installed, else llama.cpp on a machine without a CUDA GPU "
                             "where llama-cpp-python is installed (several times faster on a CPU; a run is "
                             "converted to GGUF once, generation.gguf_quant), else transformers; transformers "
                             "runs anywhere; llama.cpp needs pip install 'medtune[gguf]'; vllm needs a CUDA GPU and "
                             "pip install 'medtune[vllm]'; mlx (auto on Apple silicon with mlx-lm) needs pip install "
                             "'medtune[mlx]'. medtune's prompts, stop tokens, reasoning split and "
                             "safety layer are the same with each" + extra)


def choose_engine(name: str) -> EngineChoice:
    """The engine `name` stands for: itself, or for auto llama.cpp where no CUDA GPU is present and llama-cpp-python
    is installed (a GPU runs transformers faster than llama.cpp's CPU build), else transformers."""
    if name != AUTO:
        return EngineChoice(name, "")
    import importlib.util

    import torch

    from medtune.training.backend import apple_silicon, mlx_installed

    if apple_silicon() and mlx_installed():
        return EngineChoice("mlx", "Apple silicon, mlx-lm installed")
    if torch.cuda.is_available():
        return EngineChoice("transformers", "a CUDA GPU is present")
    if importlib.util.find_spec("llama_cpp") is None:
        return EngineChoice("transformers", "no CUDA GPU; pip install 'medtune[gguf]' for llama.cpp, several times "
                                            "faster on a CPU")
    return EngineChoice("llama.cpp", "no CUDA GPU, llama-cpp-python installed")


def engine_class(name: str):
    """Engine, VllmEngine, or LlamaCppLoader (each checked now, before anything loads; auto resolved by
    choose_engine); all load(...) with Engine.load's arguments."""
    name = choose_engine(name).name
    if name == "vllm":
        from medtune.inference.vllm_engine import VllmEngine, require_vllm

        require_vllm()
        return VllmEngine
    if name == "mlx":
        from medtune.export.mlx import peft_to_mlx
        from medtune.inference.mlx_engine import MlxLoader, require_mlx

        require_mlx()
        return MlxLoader(peft_to_mlx)  # PEFT adapters are converted by export/, which inference/ does not import
    if name == "llama.cpp":
        from medtune.export.gguf_cache import model_file
        from medtune.inference.llama_cpp_engine import LlamaCppLoader, require_llama_cpp

        require_llama_cpp()
        return LlamaCppLoader(model_file)  # runs are converted to GGUF by export/, which inference/ does not import
    from medtune.inference.engine import Engine

    return Engine


def engine_line(engine, choice: EngineChoice) -> str | None:
    """The start-up line saying which engine runs and why (None for transformers asked for by name)."""
    gguf = getattr(engine, "gguf", None)
    why = f" (auto: {choice.why})" if choice.why else ""
    if gguf is not None:
        return f"engine: llama.cpp{why}, {gguf.quant} GGUF {gguf.file} ({gguf.origin})"
    return f"engine: {choice.name}{why}" if why else None


def load_engine(args: argparse.Namespace, cfg: config_mod.Config, engine: str = AUTO):
    """The engine (see ENGINES) for --model/--adapter/--run; the config's seed seeds the process, so a sampled
    run repeats. With auto, a model llama.cpp cannot run (a converter that does not know it, a build that crashes
    at load) runs on transformers instead, saying why in one line."""
    import sys

    import torch

    from medtune.safety import load_layer

    torch.manual_seed(cfg.seed)
    choice = choose_engine(engine)
    kwargs = {"adapter": args.adapter, "run": args.run, "config": cfg, "system_prompt": args.system,
              "extra_eos_tokens": args.extra_eos_token, "safety": load_layer(cfg)}
    try:
        loaded = engine_class(choice.name).load(**kwargs)
    except MedtuneError as error:
        from medtune.inference.llama_cpp_process import LlamaCppFailed

        if engine != AUTO or not isinstance(error, LlamaCppFailed):
            raise
        choice = EngineChoice("transformers", f"llama.cpp cannot run this model: {error}")
        loaded = engine_class("transformers").load(**kwargs)
    line = engine_line(loaded, choice)
    if line:
        print(f"medtune: {line}", file=sys.stderr, flush=True)
    return loaded


def positive_int(text: str) -> int:
    """argparse type for a count that must be at least 1 (caught at the flag, not at the first request)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value
