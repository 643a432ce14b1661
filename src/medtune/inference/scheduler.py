"""The server's queue: requests wait their turn and run in batches, one batch at a time, in a worker thread.

Waiting requests that share sampling settings (SamplingParams.batch_key) run together, up to max_batch rows, so
16 clients at once cost about one generation, not sixteen; each row has its own output, so answers never mix.
A cancelled request (its client left) is skipped while it waits, and stops at the next step once running. Each row's
answer is handed over the step it ends; a request that arrives while a batch runs waits for that batch to end
(transformers' generate takes no new rows mid-flight), so a server's --max-tokens-cap bounds that wait.
Events reach the asyncio side through loop.call_soon_threadsafe.
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter, deque

from medtune.inference.engine import Engine, Request


class Job:
    """One request and the asyncio queue its Deltas, then its Generation (or an exception), arrive on."""

    def __init__(self, request: Request, loop: asyncio.AbstractEventLoop, stream: bool):
        self.request, self.loop = request, loop
        self.events: asyncio.Queue = asyncio.Queue()
        request.on_delta = self.post if stream else None  # unstreamed rows are decoded once, at the end
        self.finished = False

    def post(self, item) -> None:
        try:
            self.loop.call_soon_threadsafe(self.events.put_nowait, item)
        except RuntimeError:  # the event loop is closed: the server stopped and nobody is waiting
            pass

    def cancel(self) -> None:
        self.request.cancel.set()

    @property
    def cancelled(self) -> bool:
        return self.request.cancel.is_set()


class Scheduler:
    def __init__(self, engine: Engine, max_batch: int = 16):
        self.engine, self.max_batch = engine, max(1, max_batch)
        self.counts: Counter = Counter()  # finished, cancelled, skipped, failed, batches, largest_batch
        self.running: list[Job] = []
        self._pending: deque[Job] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._work, daemon=True, name="medtune-scheduler")
        self._thread.start()

    def submit(self, job: Job) -> None:
        with self._cond:
            self._pending.append(job)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            for job in [*self._pending, *self.running]:  # the running batch stops at its next step
                job.cancel()
            self._cond.notify()
        self._thread.join(timeout=30)

    def stats(self) -> dict:
        with self._cond:
            return {"queued": len(self._pending), "running": len(self.running), **self.counts}

    def _work(self) -> None:
        while (batch := self._next_batch()) is not None:
            for job in batch:
                job.request.on_finish = lambda gen, job=job: self._finish(job, gen)
            try:
                self.engine.run([job.request for job in batch])
            except Exception as error:  # noqa: BLE001 - handed to every waiting client as a 500
                for job in batch:
                    if not job.finished:
                        self._finish(job, error, failed=True)
            with self._cond:
                self.running = []

    def _next_batch(self) -> list[Job] | None:
        """The oldest live job and every waiting job that can share its batch; None once closed."""
        with self._cond:
            while True:
                while self._pending and self._pending[0].cancelled:
                    self._pending.popleft()
                    self.counts["skipped"] += 1
                if self._closed:
                    return None
                if self._pending:
                    break
                self._cond.wait()
            head = self._pending.popleft()
            batch = [head, *self._compatible(head)]
            self.running = batch
            self.counts["batches"] += 1
            self.counts["largest_batch"] = max(self.counts["largest_batch"], len(batch))
            return batch

    def _compatible(self, head: Job) -> list[Job]:
        key, chosen = head.request.params.batch_key, []
        for job in list(self._pending):
            if len(chosen) + 1 >= self.max_batch:
                break
            if not job.cancelled and job.request.params.batch_key == key:
                self._pending.remove(job)
                chosen.append(job)
        return chosen

    def _finish(self, job: Job, result, failed: bool = False) -> None:
        """Hand one row's Generation (or the batch's error) to its client, as soon as that row is done."""
        with self._cond:
            job.finished = True
            cancelled = not failed and result.finish_reason == "cancelled"
            self.counts["failed" if failed else "cancelled" if cancelled else "finished"] += 1
        job.post(result)
