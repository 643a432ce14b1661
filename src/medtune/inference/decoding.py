"""Per-row bookkeeping while `model.generate` runs a batch: new tokens, stops, text deltas, cancellation.

`RowTracker` is a transformers `StoppingCriteria`: generate calls it once per decoding step with every row's ids,
so it is where each row learns its new token, decides whether it is finished (stop token, stop string, its own
max_tokens, cancelled) and hands its text on. Rows only decode text step by step when someone listens or a stop
string must be watched for; otherwise the text is decoded once at the end.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch
from transformers import StoppingCriteria

from medtune.inference.reasoning import ANSWER, Delta, ReasoningSplitter, Split

STOP, LENGTH, CANCELLED = "stop", "length", "cancelled"


class IncrementalDecoder:
    """Token ids -> text deltas, without splitting multi-byte characters or word-initial spaces (the offsets
    scheme of vLLM and TGI: decode a short window, emit only what the newest token added)."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.ids: list[int] = []
        self._prefix = 0
        self._read = 0

    def add(self, token_id: int) -> str:
        self.ids.append(token_id)
        before = self._decode(self.ids[self._prefix:self._read])
        now = self._decode(self.ids[self._prefix:])
        if len(now) <= len(before) or now.endswith("\ufffd"):
            return ""  # an incomplete character: wait for the next token
        self._prefix, self._read = self._read, len(self.ids)
        return now[len(before):]

    def push(self, token_id: int) -> None:
        """Record a token without decoding (the text is decoded once, at the end)."""
        self.ids.append(token_id)

    def text(self) -> str:
        return self._decode(self.ids)

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True) if ids else ""


class StopStrings:
    """Text stops: holds back a tail that may be the start of a stop string, cuts the text at one that appears."""

    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.text = ""
        self.sent = 0

    def add(self, delta: str) -> tuple[str, bool]:
        """(text now safe to pass on, whether a stop string was found)."""
        start = max(0, self.sent - max((len(s) for s in self.stops), default=0))
        self.text += delta
        hits = [i for i in (self.text.find(s, start) for s in self.stops) if i >= 0]
        if hits:
            self.text = self.text[:min(hits)]
            return self._take(len(self.text)), True
        return self._take(len(self.text) - self._partial_tail()), False

    def flush(self) -> str:
        return self._take(len(self.text))

    def _partial_tail(self) -> int:
        longest = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(self.text)), longest, -1):
                if self.text.endswith(stop[:n]):
                    longest = n
                    break
        return longest

    def _take(self, end: int) -> str:
        out, self.sent = self.text[self.sent:end], max(self.sent, end)
        return out


class Row:
    """One sequence of a batch: its stop rules, its tokens so far, and where its text goes."""

    def __init__(self, tokenizer, max_tokens: int, stop_ids: set[int], stops: list[str], opened: bool,
                 answer_header: str | None, on_delta: Callable[[Delta], None] | None, cancel: threading.Event,
                 raw: bool = False, halt: threading.Event | None = None):
        self.max_tokens, self.stop_ids, self.cancel, self.on_delta = max_tokens, stop_ids, cancel, on_delta
        self.halt = halt  # set by the answer gate: the text so far failed the safety screen, stop here
        self.decoder = IncrementalDecoder(tokenizer)
        self.stops = StopStrings(stops)
        self.splitter = None if raw else ReasoningSplitter(opened, answer_header)  # raw: text as generated
        self.live = bool(on_delta or self.stops.stops)  # decode every step, or once at the end
        self.count = 0  # generated tokens, the stop token included
        self.finish_reason: str | None = None

    def step(self, token_id: int) -> bool:
        """Take this step's token; True once the row is finished."""
        if self.finish_reason is not None:
            return True
        if self.cancel.is_set():
            self.finish_reason = CANCELLED
            return True
        if self.halt is not None and self.halt.is_set():
            self.finish_reason = STOP
            return True
        self.count += 1
        if token_id in self.stop_ids:
            self.finish_reason = STOP
            return True
        if self.live:
            self._pass_on(*self.stops.add(self.decoder.add(token_id)))
        else:
            self.decoder.push(token_id)
        if self.finish_reason is None and self.count >= self.max_tokens:
            self.finish_reason = LENGTH
        return self.finish_reason is not None

    def finish(self) -> tuple[str, Split]:
        """The row's final text and its reasoning/answer split (streaming the tail that was held back)."""
        if self.finish_reason is None:
            self.finish_reason = CANCELLED if self.cancel.is_set() else LENGTH
        if not self.live:
            self._pass_on(*self.stops.add(self.decoder.text()))
        self._pass_on(self.stops.flush(), False)
        if self.splitter is None:
            return self.stops.text, Split(None, self.stops.text, True)
        deltas, split = self.splitter.finish()
        self._send(deltas)
        return self.stops.text, split

    def _pass_on(self, text: str, stopped: bool) -> None:
        if stopped:
            self.finish_reason = STOP
        if not text:
            return
        deltas = [Delta(ANSWER, text)] if self.splitter is None else self.splitter.feed(text)
        self._send(deltas)

    def _send(self, deltas: list[Delta]) -> None:
        if self.on_delta is not None:
            for delta in deltas:
                self.on_delta(delta)


class RowTracker(StoppingCriteria):
    """The per-step hook generate calls: feeds each row its newest token, returns which rows are finished."""

    def __init__(self, rows: list[Row], on_done: Callable[[int], None] | None = None):
        self.rows, self.on_done = rows, on_done
        self.first_token_at: float | None = None
        self._reported: set[int] = set()

    def __call__(self, input_ids: torch.LongTensor, scores, **kwargs) -> torch.BoolTensor:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        newest = input_ids[:, -1].tolist()
        done = [row.step(token) for row, token in zip(self.rows, newest)]
        if self.on_done is not None:
            for i in (i for i, d in enumerate(done) if d and i not in self._reported):
                self._reported.add(i)
                self.on_done(i)
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
