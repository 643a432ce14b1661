"""Splitting generated text into reasoning (`<think>...</think>`) and answer, as it streams or all at once.

The same state machine serves both: fed the whole text, it gives what streaming it chunk by chunk gives.
It copes with an opening tag that the prompt already wrote (R1-style templates), a closing tag that never
comes (generation hit max_tokens), no reasoning at all, a second think block after some answer (its text is
reasoning too), and a header in front of the answer (r1-cot's "### Answer:"). Tags split across chunks are held
back until they are complete.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.records import THINK_CLOSE, THINK_OPEN

REASONING, ANSWER = "reasoning", "answer"


@dataclass
class Delta:
    """A piece of streamed output: kind is "reasoning" or "answer"."""

    kind: str
    text: str


@dataclass
class Split:
    reasoning: str | None  # None when the model wrote no think block
    answer: str
    reasoning_finished: bool  # False when <think> was opened and never closed


def prompt_opens_reasoning(prompt: str) -> bool:
    """True when the prompt ends inside an open think block (the model continues the reasoning)."""
    return prompt.rstrip().endswith(THINK_OPEN)


class ReasoningSplitter:
    """Feed text chunks, get Deltas; finish() flushes what was held back and returns the Split."""

    def __init__(self, opened: bool = False, answer_header: str | None = None):
        self._state = "reasoning_lead" if opened else "start"
        self._header = (answer_header or "").strip()
        self._buf = ""
        self._reasoning: list[str] | None = [] if opened else None
        self._answer: list[str] = []

    def feed(self, text: str) -> list[Delta]:
        self._buf += text
        out: list[Delta] = []
        while self._step(out):
            pass
        return out

    def finish(self) -> tuple[list[Delta], Split]:
        """Flush: a partial tag or header left at the end is plain text after all."""
        out = self._flush()
        reasoning = "".join(self._reasoning).strip() if self._reasoning is not None else None
        finished = self._reasoning is None or self._state not in ("reasoning_lead", "reasoning")
        return out, Split(reasoning, "".join(self._answer).strip(), finished)

    # ------------------------------------------------------------ states

    def _step(self, out: list[Delta]) -> bool:
        """Advance one state; False when more text is needed."""
        return getattr(self, f"_on_{self._state}")(out)

    def _on_start(self, out: list[Delta]) -> bool:
        head = self._buf.lstrip()
        if head.startswith(THINK_OPEN):
            self._buf, self._reasoning, self._state = head[len(THINK_OPEN):], [], "reasoning_lead"
            return True
        if not head or THINK_OPEN.startswith(head):
            return False  # only white space, or a partial '<thi' so far
        self._state = "answer_lead"
        return True

    def _on_reasoning_lead(self, out: list[Delta]) -> bool:
        self._buf = self._buf.lstrip()
        if not self._buf:
            return False
        self._state = "reasoning"
        return True

    def _on_reasoning(self, out: list[Delta]) -> bool:
        end = self._buf.find(THINK_CLOSE)
        if end >= 0:
            self._emit(REASONING, self._buf[:end].rstrip(), out)
            self._buf, self._state = self._buf[end + len(THINK_CLOSE):], "answer_lead"
            return True
        self._emit_safe(REASONING, THINK_CLOSE, out)
        return False

    def _on_answer_lead(self, out: list[Delta]) -> bool:
        head = self._buf.lstrip()
        if not head:
            self._buf = ""
            return False
        if self._header and head.startswith(self._header):
            self._buf, self._header = head[len(self._header):], ""
            return True
        if self._header and self._header.startswith(head):
            return False  # a partial header so far
        self._buf, self._state = head, "answer"
        if self._answer:  # the answer goes on after a second think block
            self._emit(ANSWER, "\n\n", out)
        return True

    def _on_answer(self, out: list[Delta]) -> bool:
        start = self._buf.find(THINK_OPEN)
        if start < 0:
            self._emit_safe(ANSWER, THINK_OPEN, out)
            return False
        # A second think block (models that think again mid-answer): reasoning too, never tags in the answer.
        self._emit(ANSWER, self._buf[:start].rstrip(), out)
        self._buf, self._state = self._buf[start + len(THINK_OPEN):], "reasoning_lead"
        if self._reasoning is None:
            self._reasoning = []
        elif self._reasoning:
            self._emit(REASONING, "\n\n", out)
        return True

    # ------------------------------------------------------------ output

    def _emit_safe(self, kind: str, tag: str, out: list[Delta]) -> None:
        """Emit all but trailing white space and a trailing partial `tag`, which later text may complete."""
        keep = len(self._buf.rstrip())
        for n in range(min(len(tag) - 1, keep), 0, -1):
            if self._buf[:keep].endswith(tag[:n]):
                keep = len(self._buf[:keep - n].rstrip())
                break
        self._emit(kind, self._buf[:keep], out)
        self._buf = self._buf[keep:]

    def _emit(self, kind: str, text: str, out: list[Delta]) -> None:
        if not text:
            return
        (self._reasoning if kind == REASONING else self._answer).append(text)
        out.append(Delta(kind, text))

    def _flush(self) -> list[Delta]:
        out: list[Delta] = []
        text = self._buf.strip() if self._state in ("start", "answer_lead", "reasoning_lead") else self._buf.rstrip()
        kind = REASONING if self._state.startswith("reasoning") else ANSWER
        self._emit(kind, text, out)
        self._buf = ""
        return out


def split_output(text: str, opened: bool = False, answer_header: str | None = None) -> Split:
    """The whole generated text at once: split_output('<think>r</think>a') -> Split('r', 'a', True)."""
    splitter = ReasoningSplitter(opened, answer_header)
    splitter.feed(text)
    return splitter.finish()[1]
