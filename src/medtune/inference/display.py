"""Terminal output shared by generate and chat: reasoning labelled and dimmed, then the answer, then stats."""

from __future__ import annotations

import sys
from typing import TextIO

from medtune.inference.reasoning import REASONING, Delta

DIM, BOLD, RESET = "\033[2m", "\033[1m", "\033[0m"


class Printer:
    """Writes Deltas as they come (streaming) or a whole Generation; colour only on a terminal."""

    def __init__(self, out: TextIO = sys.stdout, show_reasoning: bool = True, color: bool | None = None):
        self.out, self.show_reasoning = out, show_reasoning
        self.color = out.isatty() if color is None else color
        self._kind: str | None = None  # the section being written

    def delta(self, delta: Delta) -> None:
        if delta.kind == REASONING and not self.show_reasoning:
            return
        if delta.kind != self._kind:
            self._open(delta.kind)
        self.out.write(f"{DIM}{delta.text}{RESET}" if self.color and delta.kind == REASONING else delta.text)
        self.out.flush()

    def generation(self, gen) -> None:
        """A finished Generation, written as the stream would have written it: the layer's emergency advice (if
        any) first, the reasoning, then the answer."""
        if gen.advice:
            self.delta(Delta("answer", gen.advice))
        if gen.reasoning:
            self.delta(Delta(REASONING, gen.reasoning))
        answer = gen.answer.removeprefix(gen.advice) if gen.advice else gen.answer
        if answer:
            self.delta(Delta("answer", answer))
        self.end(gen)

    def end(self, gen) -> None:
        """Close the output, with a note when the answer is missing or cut short."""
        if self._kind is not None:
            self.out.write("\n")
        note = notice(gen)
        if note:
            self.out.write(self._styled(f"[{note}]", DIM) + "\n")
        self.out.flush()
        self._kind = None

    def _open(self, kind: str) -> None:
        if self._kind is not None:
            self.out.write("\n")
        if self.show_reasoning:  # labels only matter when both sections may show
            self.out.write(self._styled("Reasoning:" if kind == REASONING else "Answer:", BOLD) + "\n")
        self._kind = kind

    def _styled(self, text: str, style: str) -> str:
        return f"{style}{text}{RESET}" if self.color else text


def notice(gen) -> str | None:
    if gen.finish_reason == "cancelled":
        return "stopped"
    if gen.safety is not None:
        return safety_notice(gen.safety)
    if not gen.reasoning_finished:
        return ("the reasoning did not finish within max_tokens, so there is no answer: raise --max-tokens"
                if gen.finish_reason == "length" else "the reasoning never closed, so there is no answer")
    if gen.finish_reason == "length":
        return "the answer was cut at max_tokens"
    if gen.advice:
        return "safety layer: emergency advice given before the answer"
    return None


def safety_notice(verdict) -> str:
    """What the layer did, in words: the category and the layer that decided (never the user's text)."""
    what = {"emergency": "emergency advice given instead of an answer", "refuse": "request refused"}[verdict.action]
    if verdict.stage == "answer":
        what = "the answer was withheld and replaced by the refusal"
    category = (verdict.category or "unavailable screen").replace("_", " ")
    return f"safety layer: {what} (category: {category}; layer: {verdict.layer})"


def stats_line(gen) -> str:
    s = gen.stats
    first = f"{s.first_token_s:.2f}s" if s.first_token_s is not None else "-"
    return (f"prompt {s.prompt_tokens} tokens | generated {s.generated_tokens} tokens | {s.tokens_per_s:.1f} tokens/s"
            f" | first token {first} | peak memory {s.peak_memory_mb:.0f} MB | stop: {gen.finish_reason}")
