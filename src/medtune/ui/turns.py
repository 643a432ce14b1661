"""One question and its answer as the page shows it: built from the engine's Deltas and finished Generation, then
rendered as Gradio chat messages. Pure functions on plain data, so they are tested without a browser or a model.

    ex = Exchange(question)
    for delta in stream: add(ex, delta)          # reasoning and answer text as it streams
    finish(ex, stream.generation)                # the answer without the disclaimer, which is shown apart
    render([ex], show_reasoning=True)            # [{"role": "user", ...}, {"role": "assistant", "metadata": ...}]
    history([ex])                                # what the next prompt remembers: questions and plain answers
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.records import Message
from medtune.errors import first_line
from medtune.inference.display import notice, safety_notice
from medtune.inference.reasoning import REASONING, Delta

GENERATING, DONE, STOPPED, FAILED = "generating", "done", "stopped", "error"
REASONING_TITLE = "Reasoning"
STOPPED_NOTICE = "Stopped by the user."
CUT_REASONING = "The reasoning did not finish within the max tokens, so there is no answer: raise Max tokens."


@dataclass
class Exchange:
    question: str
    reasoning: str = ""
    answer: str = ""  # as streamed; once finished, without the disclaimer
    disclaimer: str | None = None  # what the safety layer appended, shown as its own note
    notice: str | None = None  # a labelled line under the answer: safety layer, stopped, cut short, error
    state: str = GENERATING
    reply: str | None = None  # the answer the conversation remembers; None: this turn is not remembered
    dropped: int = 0  # oldest messages left out of this prompt to fit the context window


def add(ex: Exchange, delta: Delta) -> None:
    if delta.kind == REASONING:
        ex.reasoning += delta.text
    else:
        ex.answer += delta.text


def finish(ex: Exchange, gen) -> None:
    """The finished Generation replaces what streamed: a replaced answer or the disclaimer arrive only at the end."""
    ex.reasoning, ex.disclaimer = gen.reasoning or "", gen.disclaimer
    ex.answer = (gen.advice or "") + gen.plain_answer  # an emergency's advice stays above the answer
    ex.notice = notice_text(gen)
    stopped = gen.finish_reason == "cancelled"
    ex.state = STOPPED if stopped else DONE
    ex.reply = None if stopped else gen.plain_answer  # as chat does: a stopped answer is not remembered


def fail(ex: Exchange, error: BaseException) -> None:
    ex.notice, ex.state, ex.reply = f"Error: {first_line(error)}", FAILED, None


def notice_text(gen) -> str | None:
    """The line shown under an answer, or None: the safety layer's decision, a stop, an answer cut short."""
    if gen.finish_reason == "cancelled":
        return STOPPED_NOTICE
    if gen.safety is None and not gen.reasoning_finished and gen.finish_reason == "length":
        return CUT_REASONING  # the page's words: the terminal's notice names the --max-tokens flag
    text = safety_notice(gen.safety) if gen.safety is not None else notice(gen)
    return text[:1].upper() + text[1:] + "." if text else None


def history(exchanges: list[Exchange]) -> list[Message]:
    """The conversation the model sees next: each remembered question with its plain answer."""
    messages: list[Message] = []
    for ex in exchanges:
        if ex.reply is not None:
            messages += [Message("user", ex.question), Message("assistant", ex.reply)]
    return messages


def render(exchanges: list[Exchange], show_reasoning: bool = True) -> list[dict]:
    return [message for ex in exchanges for message in render_one(ex, show_reasoning)]


def render_one(ex: Exchange, show_reasoning: bool = True) -> list[dict]:
    """The user's question, then the reasoning (a collapsible block), the answer, the disclaimer and the notice."""
    out = [{"role": "user", "content": ex.question}]
    if show_reasoning and ex.reasoning:
        thinking = ex.state == GENERATING and not ex.answer
        out.append(_assistant(ex.reasoning, {"title": REASONING_TITLE, "status": "pending" if thinking else "done"}))
    if ex.answer:
        out.append(_assistant(ex.answer))
    if ex.disclaimer:
        out.append(_assistant(f"*{ex.disclaimer.strip()}*"))
    if ex.notice:
        out.append(_assistant(f"> **{ex.notice}**"))
    if ex.dropped:
        out.append(_assistant(f"> Context full: the {ex.dropped} oldest messages were left out of this prompt."))
    return out


def _assistant(content: str, metadata: dict | None = None) -> dict:
    return {"role": "assistant", "content": content, **({"metadata": metadata} if metadata else {})}


def status_line(sides: list[list[Exchange]]) -> str:
    """The page's state: generating, stopped by the user, an error, or ready."""
    last = [side[-1] for side in sides if side]
    states = {ex.state for ex in last}
    if GENERATING in states:
        return "Generating…"
    if FAILED in states:
        return next(ex.notice for ex in last if ex.state == FAILED)
    return STOPPED_NOTICE if STOPPED in states else "Ready."
