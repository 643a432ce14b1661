"""A multi-turn chat session on the engine: the conversation so far, its commands, one streamed answer per question.
Used by `medtune chat` (medtune.commands.chat)."""

from __future__ import annotations

from typing import TextIO

from medtune.data.records import Message
from medtune.errors import MedtuneError
from medtune.inference.display import DIM, Printer

HELP = ("commands: /reset, /system TEXT (or off), /reasoning on|off, /help, /quit "
        "(Ctrl-C stops an answer, Ctrl-D leaves)")
QUIT = {"/quit", "/exit", "quit", "exit"}


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
            self.history = [*messages, Message("assistant", gen.plain_answer)]  # the disclaimer is said, not recalled

    def say(self, text: str) -> None:
        self.out.write(f"{DIM}[{text}]\033[0m\n" if self.printer.color else f"[{text}]\n")
        self.out.flush()
