"""Wrong passwords on the web page's login, throttled per client: after a few failures in a minute a client's
further tries are answered 429 (with Retry-After) without reaching the password check.

Gradio's auth callback is given the user name and password only, not who is asking, so the throttle sits in front
of the app as ASGI middleware (passed to launch() through app_kwargs) and reads the client's address and the login
route's answer (200: right, 400: wrong).
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict, deque

MAX_FAILURES = 5  # wrong passwords a client may send ...
WINDOW_S = 60.0  # ... within this many seconds; then it waits until the oldest of them is that old


class LoginThrottle:
    """ASGI middleware: POST .../login from a client with MAX_FAILURES wrong passwords in the last WINDOW_S is
    refused with 429; a right password clears the client's count."""

    def __init__(self, app, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S, clock=time.monotonic):
        self.app, self.max_failures, self.window_s, self.clock = app, max_failures, window_s, clock
        self.failures: dict[str, deque] = defaultdict(deque)
        self.lock = threading.Lock()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not scope["path"].rstrip("/").endswith("/login"):
            return await self.app(scope, receive, send)
        client = (scope.get("client") or ("unknown",))[0]
        wait = self.wait_s(client)
        if wait > 0:
            return await _too_many(send, wait)
        status = {}

        async def watch(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        self.record(client, status.get("code"))

    def wait_s(self, client: str) -> float:
        """Seconds this client must wait before its next try (0: it may try now)."""
        with self.lock:
            times = self._recent(client)
            return times[0] + self.window_s - self.clock() if len(times) >= self.max_failures else 0.0

    def record(self, client: str, status: int | None) -> None:
        with self.lock:
            if status == 200:
                self.failures.pop(client, None)
            elif status == 400:  # Gradio's "Incorrect credentials."
                self._recent(client).append(self.clock())

    def _recent(self, client: str) -> deque:
        times = self.failures[client]
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        return times


async def _too_many(send, wait_s: float) -> None:
    body = b'{"detail": "Too many wrong passwords from this address: try again later."}'
    await send({"type": "http.response.start", "status": 429,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", str(math.ceil(wait_s)).encode()),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
