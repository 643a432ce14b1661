"""A streamed generation: the engine runs in a worker thread and hands Deltas over a queue.

Leaving the loop early (break, an exception, Ctrl-C, a client gone) cancels the generation at the next step,
so the model is free again at once; `generation` then holds what was made, with finish_reason "cancelled".
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from medtune.inference.reasoning import Delta

if TYPE_CHECKING:
    from medtune.inference.engine import Engine, Generation, Request


class Stream:
    def __init__(self, engine: Engine, request: Request):
        self.request = request
        self.generation: Generation | None = None
        self._events: queue.Queue = queue.Queue()
        request.on_delta = self._events.put
        self._thread = threading.Thread(target=self._work, args=(engine,), daemon=True, name="medtune-stream")
        self._thread.start()

    def __iter__(self) -> Iterator[Delta]:
        try:
            while True:
                event = self._events.get()
                if isinstance(event, Delta):
                    yield event
                elif isinstance(event, BaseException):
                    raise event
                else:
                    self.generation = event
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop generating (if still running) and wait for the worker; idempotent."""
        self.request.cancel.set()
        self._thread.join()
        while self.generation is None and not self._events.empty():
            event = self._events.get()
            if not isinstance(event, (Delta, BaseException)):
                self.generation = event

    def _work(self, engine: Engine) -> None:
        try:
            self._events.put(engine.run([self.request])[0])
        except BaseException as error:  # handed to the reader, who raises it
            self._events.put(error)
