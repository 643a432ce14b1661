"""`medtune config [CONFIG] [key=value ...]`: the config a run would use, checked and resolved, as YAML;
`medtune config --list [--markdown]`: every key with its type, default, allowed values and help (the Markdown
form is docs/config.md)."""

from __future__ import annotations

import argparse
import sys

import yaml

from medtune.commands.args import add_config_arguments, config_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("--list", action="store_true",
                        help="every config key with its type, default, allowed values and help")
    parser.add_argument("--markdown", action="store_true", help="with --list: as the Markdown of docs/config.md")
    add_config_arguments(parser)


def main(args: argparse.Namespace) -> int:
    from medtune import config_reference
    from medtune.errors import ConfigError

    if args.markdown and not args.list:
        raise ConfigError("--markdown goes with --list (medtune config --list --markdown)")
    if args.list:
        if args.items or args.config:
            raise ConfigError("--list describes every key and takes no config file or override")
        sys.stdout.write(config_reference.as_markdown() if args.markdown else config_reference.as_text())
        return 0
    cfg = config_from_args(args)
    sys.stdout.write(yaml.safe_dump(cfg.to_dict(), sort_keys=False, allow_unicode=True, width=120))
    return 0
