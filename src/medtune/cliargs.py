"""Arguments every config-reading verb shares: --config, and dotted key=value overrides."""

from __future__ import annotations

import argparse

from medtune import config as config_mod
from medtune.errors import ConfigError


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", help="YAML config file (see configs/ for recipes)")
    parser.add_argument(
        "items", nargs="*", metavar="[CONFIG] key=value",
        help="a config path, then dotted overrides such as training.learning_rate=1e-4",
    )


def load_config(args: argparse.Namespace, flags: dict | None = None) -> config_mod.Config:
    """Config from --config or a leading positional path, with the key=value overrides applied, then the
    verb's own flags (dotted key -> value; None means the flag was not given)."""
    path = args.config
    overrides = []
    for item in args.items:
        if "=" in item:
            overrides.append(item)
        elif path is None:
            path = item
        else:
            raise ConfigError(f"unexpected argument {item!r}: one config file, then key=value overrides")
    values = {k: v for k, v in (flags or {}).items() if v is not None}
    return config_mod.load(path, overrides, values)
