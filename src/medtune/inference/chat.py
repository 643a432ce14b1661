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
from typing import TextIO

from medtune.data.records import Message
from medtune.errors import MedtuneError
from medtune.inference.display import DIM, Printer
from medtune.inference.options import add_model_arguments, add_sampling_arguments, load_engine, sampling_params

HELP = ("commands: /reset, /system TEXT (or off), /reasoning on|off, /help, /quit "
        "(Ctrl-C stops an answer, Ctrl-D leaves)")
QUIT = {"/quit", "/exit", "quit", "exit"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    parser.add_argument("--hide-reasoning", action="store_true", help="start with the reasoning hidden")


def main(args: argparse.Namespace) -> int:
    engine = load_engine(args)
    session = ChatSession(engine, sampling_params(args), sys.stdout, show_reasoning=not args.hide_reasoning)
    interactive = sys.stdin.isatty()
    if interactive:
        print(f"medtune chat: {engine.name}. {HELP}")
    while (line := _read(interactive)) is not None:
        if not session.handle(line):
            break
    return 0


def _read(interactive: bool) -> str | None:
    """The next line; None at end of input. Ctrl-C at the prompt only clears the line."""
    while True:
        try:
            line = input("you> ") if interactive else sys.stdin.readline()
        except EOFError:
            return None
        except KeyboardInterrupt:
            print("\n(Ctrl-D or /quit to leave)")
            continue
        if not interactive and line == "":
            return None
        return line.strip()


class ChatSession:
    """The conversation so far and the commands that change it; one answer per handled question."""

    def __init__(self, engine, params, out: TextIO, show_reasoning: bool = True):
        self.engine, self.params, self.out = engine, params, out
        self.history: list[Message] = []
        self.printer = Printer(out, show_reasoning=show_reasoning)
        self.reserve = min(params.max_tokens, (engine.context_length or params.max_tokens) // 2)

    def handle(self, line: str) -> bool:
        """Act on one input line; False to leave."""
        if not line:
            return True
        if line.lower() in QUIT:
            return False
        try:
            self.command(line) if line.startswith("/") else self.ask(line)
        except MedtuneError as error:  # e.g. a one-turn template asked a second question: say so, go on
            self.say(str(error))
        return True

    def command(self, line: str) -> None:
        name, _, rest = line.partition(" ")
        if name == "/reset":
            self.history.clear()
            self.say("conversation cleared")
        elif name == "/system":
            self._system(rest.strip())
        elif name == "/reasoning" and rest.strip() in ("on", "off"):
            self.printer.show_reasoning = rest.strip() == "on"
            self.say(f"reasoning {rest.strip()}")
        else:
            self.say(HELP if name == "/help" else f"unknown command {line!r}; {HELP}")

    def _system(self, text: str) -> None:
        if text == "off":
            self.engine.system_prompt = None
        elif text:
            self.engine.system_prompt = text
        self.say(f"system prompt: {self.engine.system_prompt or '(none)'}")

    def ask(self, question: str) -> None:
        messages, dropped = self.engine.fit([*self.history, Message("user", question)], self.reserve)
        if dropped:
            self.say(f"context full: dropped the {dropped} oldest message{'s' * (dropped > 1)}")
        stream = self.engine.stream(messages, self.params)
        try:
            for delta in stream:
                self.printer.delta(delta)
        except KeyboardInterrupt:
            stream.close()  # the stream is cancelled; the session goes on
        gen = stream.generation
        self.printer.end(gen)
        if gen.finish_reason != "cancelled":
            self.history = [*messages, Message("assistant", gen.answer)]

    def say(self, text: str) -> None:
        self.out.write(f"{DIM}[{text}]\033[0m\n" if self.printer.color else f"[{text}]\n")
        self.out.flush()
