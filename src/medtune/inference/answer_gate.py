"""Streamed text held back until the safety layer's answer screen has passed it.

A stream that sent every token at once and screened the answer at the end would have shown a dangerous answer
before replacing it. The gate sits between a row and its listener: it passes text on a sentence at a time, each
after the answer rules have read everything written so far; when they object, the rest is withheld, the model
stops, and the engine sends the refusal in its place. With a guard endpoint the whole answer waits for the guard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from medtune.inference.reasoning import ANSWER, REASONING, Delta

BOUNDARIES = ".!?\n"


class AnswerGate:
    def __init__(self, safety, send: Callable[[Delta], None]):
        self.safety, self.send = safety, send
        self.hold_all = safety.guard is not None  # the guard reads the answer once, whole
        self.halt = threading.Event()  # set when the rules object: the row stops generating
        self.verdict = None  # the answer rules' objection, once made
        self.sent_any = False
        self._pending: list[Delta] = []
        self._written = {REASONING: "", ANSWER: ""}

    def __call__(self, delta: Delta) -> None:
        if self.verdict is not None:
            return  # withheld: nothing more reaches the listener
        self._pending.append(delta)
        self._written[delta.kind] = self._written.get(delta.kind, "") + delta.text
        if self.hold_all or not any(c in delta.text for c in BOUNDARIES):
            return
        verdict = self.safety.answer_rules(self._written[ANSWER], self._written[REASONING])
        if verdict.blocked:
            self.verdict, self._pending = verdict, []
            self.halt.set()
        else:
            self._release_to_last_boundary()

    def release(self) -> None:
        """The whole answer passed the screen: send what is still held."""
        self._send(self._pending)
        self._pending = []

    def replace(self, reply: str) -> None:
        """The answer failed the screen: drop what is held, send the reply after whatever was already sent."""
        self._pending = []
        self._send([Delta(ANSWER, ("\n\n" if self.sent_any else "") + reply)])

    def _release_to_last_boundary(self) -> None:
        """Send everything held up to the newest delta's last sentence end; its unfinished sentence waits."""
        *before, newest = self._pending
        cut = max(newest.text.rfind(c) for c in BOUNDARIES) + 1
        self._send([*before, Delta(newest.kind, newest.text[:cut])])
        self._pending = [Delta(newest.kind, newest.text[cut:])] if newest.text[cut:] else []

    def _send(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            if delta.text:
                self.send(delta)
                self.sent_any = True
