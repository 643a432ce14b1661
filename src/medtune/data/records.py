"""The one internal form every dataset layout converts into: messages, with reasoning kept apart from answers."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_THINK_RE = re.compile(r"^\s*<think>(.*?)</think>\s*(.*)$", re.DOTALL)


@dataclass
class Message:
    role: str  # "system" | "user" | "assistant"
    content: str  # for an assistant turn: the answer only
    reasoning: str | None = None  # assistant turns only: the chain of thought, without tags


@dataclass
class Record:
    messages: list[Message]
    source: str = ""  # "file:line" (or "dataset[index]"), for error messages and reports
    meta: dict = field(default_factory=dict)

    @property
    def system(self) -> str | None:
        return next((m.content for m in self.messages if m.role == "system"), None)

    @property
    def question(self) -> str:
        """The question asked (meta["question"], where the user turn wraps it: an MCQ's instruction and options), else
        the first user turn: what leakage checks and dedup look at."""
        return self.meta.get("question") or next((m.content for m in self.messages if m.role == "user"), "")

    @property
    def final(self) -> Message:
        """The last assistant turn."""
        return next(m for m in reversed(self.messages) if m.role == "assistant")


def split_reasoning(text: str) -> tuple[str | None, str]:
    """'<think>r</think>a' -> ('r', 'a'); text without a leading think block -> (None, text)."""
    match = _THINK_RE.match(text)
    if not match:
        return None, text
    return match.group(1).strip(), match.group(2).strip()


def assistant_text(message: Message, keep_reasoning: bool = True) -> str:
    """The assistant turn as the model learns to write it: '<think>reasoning</think>answer'."""
    if keep_reasoning and message.reasoning:
        return f"{THINK_OPEN}{message.reasoning}{THINK_CLOSE}{message.content}"
    return message.content
