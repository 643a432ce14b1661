"""Several engine Streams read as one, so two models answer the same question side by side at the same time.

    together = Together([engine_a.stream(msgs, params), engine_b.stream(msgs, params)])
    for side, item in together:      # item: a Delta, then the finished Generation, or the exception that ended it
        ...
    together.cancel()                # from any thread (the Stop button): every stream ends at its next step
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

from medtune.inference.reasoning import Delta


class Together:
    def __init__(self, streams: list):
        self.streams = streams
        self._events: queue.Queue = queue.Queue()
        self._threads = [threading.Thread(target=self._pump, args=(i, s), daemon=True, name=f"medtune-ui-{i}")
                         for i, s in enumerate(streams)]
        for thread in self._threads:
            thread.start()

    def __iter__(self) -> Iterator[tuple[int, object]]:
        left = len(self.streams)
        try:
            while left:
                side, item = self._events.get()
                left -= not isinstance(item, Delta)  # a Generation or an exception ends that side
                yield side, item
        finally:
            self.cancel()  # the reader left (a closed page, an error): free the models at once
            for thread in self._threads:
                thread.join()

    def cancel(self) -> None:
        """Stop every stream at its next step; each still hands over its Generation (finish_reason "cancelled")."""
        for stream in self.streams:
            stream.request.cancel.set()  # not stream.close(): that would take the Generation from the pump

    def _pump(self, side: int, stream) -> None:
        try:
            for delta in stream:
                self._events.put((side, delta))
            self._events.put((side, stream.generation))
        except Exception as error:  # shown on that side; the other side goes on
            self._events.put((side, error))
