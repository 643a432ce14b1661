"""`medtune chat`: a multi-turn assistant in the terminal, streaming its reasoning and answers.

Commands: /reset (forget the conversation), /system TEXT (set the system prompt; /system alone shows it,
/system off clears it), /reasoning on|off, /help, /quit (also quit, exit, Ctrl-D). Ctrl-C stops the current
answer and keeps the session.
When standard input is not a terminal, each line is one question, so a chat can be scripted:

    printf 'What is anemia?\\n/reset\\nAnd scurvy?\\n' | medtune chat --run runs/phi4-med
"""

from __future__ import annotations

import argparse
import sys

from medtune.commands.args import (
    add_engine_argument,
    add_model_arguments,
    add_sampling_arguments,
    engine_config,
    load_engine,
    sampling_params,
)
from medtune.data.sources import decode_utf8
from medtune.inference.chat import HELP, ChatSession


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    add_engine_argument(parser)
    parser.add_argument("--hide-reasoning", action="store_true", help="start with the reasoning hidden")


def main(args: argparse.Namespace) -> int:
    cfg = engine_config(args)
    params = sampling_params(cfg)
    engine = load_engine(args, cfg, args.engine)
    session = ChatSession(engine, params, sys.stdout, show_reasoning=not args.hide_reasoning)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"medtune chat: {engine.name}. {HELP}")
    for line in _typed_lines() if interactive else _piped_lines():
        if not session.handle(line):
            break
    return 0


def _typed_lines():
    """Lines typed at the prompt, until Ctrl-D. Ctrl-C at the prompt only clears the line; a line the terminal
    sent in another encoding is said and skipped (the chat goes on)."""
    while True:
        try:
            yield input("you> ").strip()
        except EOFError:
            return
        except KeyboardInterrupt:
            print("\n(Ctrl-D or /quit to leave)")
        except UnicodeDecodeError:
            print("(that line was not UTF-8 text: type it again)")


def _piped_lines():
    """Lines of a script on standard input, read as bytes: one that is not UTF-8 ends the chat with one line
    naming it (not a traceback)."""
    for number, raw in enumerate(iter(sys.stdin.buffer.readline, b""), 1):
        yield decode_utf8(raw, "standard input", first_line=number).strip()


