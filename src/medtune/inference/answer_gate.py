"""Streamed text held back until the safety layer's answer screen has passed it.

A stream that sent every token at once and screened the answer at the end would have shown a dangerous answer
before replacing it. The gate sits between a row and its listener: it passes text on a sentence at a time (and a
text without sentence ends in chunks), each after the answer rules have read everything written so far; when they
object, the rest is withheld, the model stops, and the engine sends the refusal in its place. With a guard endpoint
the whole answer waits for the guard.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from medtune.inference.reasoning import ANSWER, REASONING, Delta

BOUNDARIES = ".!?\n"
# Text without a sentence end (a list run together, one endless clause) is passed on too, or it would arrive only
# when the row ends. Once FLUSH_CHARS are held, or FLUSH_SECONDS have passed since the last release, the rules read
# everything written and all but the newest HOLD_BACK characters go. HOLD_BACK is longer than the widest built-in
# rule can match (about 200 characters: words with gaps of up to 60 and 80 between them), so a phrase the rules
# would stop is still held, whole, when its last word arrives; FLUSH_CHARS at twice that runs the rules once per
# ~240 new characters, not on every token. The time bound keeps a slow model's text (a few tokens a second on a CPU)
# trailing the writing by HOLD_BACK rather than by a whole chunk.
HOLD_BACK = 240
FLUSH_CHARS = 2 * HOLD_BACK
FLUSH_SECONDS = 1.0


class AnswerGate:
    def __init__(self, safety, send: Callable[[Delta], None], clock: Callable[[], float] = time.monotonic):
        self.safety, self.send, self.clock = safety, send, clock
        self.hold_all = safety.guard is not None  # the guard reads the answer once, whole
        self.halt = threading.Event()  # set when the rules object: the row stops generating
        self.verdict = None  # the answer rules' objection, once made
        self.sent_any = False
        self._pending: list[Delta] = []
        self._written = {REASONING: "", ANSWER: ""}
        self._released_at = clock()

    def __call__(self, delta: Delta) -> None:
        if self.verdict is not None:
            return  # withheld: nothing more reaches the listener
        self._pending.append(delta)
        self._written[delta.kind] = self._written.get(delta.kind, "") + delta.text
        cut = None if self.hold_all else self._cut(delta)
        if cut is None:
            return
        verdict = self.safety.answer_rules(self._written[ANSWER], self._written[REASONING])
        if verdict.blocked:
            self.verdict, self._pending = verdict, []
            self.halt.set()
        else:
            self._release(cut)

    def release(self) -> None:
        """The whole answer passed the screen: send what is still held."""
        self._send(self._pending)
        self._pending = []

    def replace(self, reply: str) -> None:
        """The answer failed the screen: drop what is held, send the reply after whatever was already sent."""
        self._pending = []
        self._send([Delta(ANSWER, ("\n\n" if self.sent_any else "") + reply)])

    def _cut(self, newest: Delta) -> int | None:
        """How many held characters may go once the rules pass them: through the newest delta's last sentence end
        (its unfinished sentence waits), or, past a flush bound, all but the last HOLD_BACK; None: none yet."""
        held = sum(len(d.text) for d in self._pending)
        if any(c in newest.text for c in BOUNDARIES):
            return held - len(newest.text) + max(newest.text.rfind(c) for c in BOUNDARIES) + 1
        if held >= FLUSH_CHARS or (held > HOLD_BACK and self.clock() - self._released_at >= FLUSH_SECONDS):
            return held - HOLD_BACK
        return None

    def _release(self, cut: int) -> None:
        """Send the first `cut` held characters, splitting the delta they end in; the rest waits."""
        sending, kept = [], []
        for delta in self._pending:
            head, tail = delta.text[:max(cut, 0)], delta.text[max(cut, 0):]
            sending += [Delta(delta.kind, head)] if head else []
            kept += [Delta(delta.kind, tail)] if tail else []
            cut -= len(delta.text)
        self._send(sending)
        self._pending, self._released_at = kept, self.clock()

    def _send(self, deltas: list[Delta]) -> None:
        for delta in deltas:
            if delta.text:
                self.send(delta)
                self.sent_any = True
