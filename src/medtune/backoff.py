"""When to send a failed HTTP request again and how long to wait first: exponential backoff with jitter, a server's
Retry-After honoured, a bounded number of tries within a bounded time. The judge's and the guard's endpoint client
(endpoint.py) uses it; so may any other client.

The waits follow the OpenAI Python client (openai/_constants.py; openai/_base_client.py `_calculate_retry_timeout`,
`_parse_retry_after_header`, `_should_retry`): which statuses are retried, 0.5 s doubled per retry up to 8 s, cut by
a random 0-25% so that concurrent workers do not retry in step, and a server's Retry-After-Ms / Retry-After (seconds
or an HTTP date) used as given. The bounds are medtune's: that client gives up after 2 retries, while a judge run
sends hundreds of requests from several workers and should ride out a minute's overload or restart.
"""

from __future__ import annotations

import email.utils
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

# from the OpenAI Python client (openai/_constants.py INITIAL_RETRY_DELAY, MAX_RETRY_DELAY; the 25% jitter of
# _calculate_retry_timeout)
INITIAL_DELAY_S = 0.5
MAX_DELAY_S = 8.0
JITTER = 0.25
# medtune's bounds: at most 10 tries (the computed waits between them add up to at most 47.5 s), and no wait that
# would end more than 60 s after the first try. (The OpenAI client honours a Retry-After of up to 120 s; here a
# Retry-After that would pass the 60 s bound ends the tries at once, since waiting could not end in a success.)
MAX_TRIES = 10
TOTAL_S = 60.0

# as the OpenAI client's _should_retry: request timeout, lock timeout, rate limit, and every 5xx
RETRYABLE_4XX = (408, 409, 429)


def retryable(status: int) -> bool:
    """Whether the same request may pass later (else the server refused it for good)."""
    return status in RETRYABLE_4XX or status >= 500


def retry_after(headers: Mapping[str, str] | None, now: float) -> float | None:
    """Seconds a response asks the client to wait, or None: Retry-After-Ms, else Retry-After as seconds (a float
    allowed) or as an HTTP date (then `now` is the wall-clock time in seconds since the epoch)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000), ("retry-after", 1)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    value = headers.get("retry-after")
    try:
        when = email.utils.parsedate_tz(value) if value else None
        return float(email.utils.mktime_tz(when)) - now if when else None
    except (TypeError, ValueError, OverflowError):
        return None


@dataclass(frozen=True)
class Backoff:
    """The retry policy of one client. `sleep` and `clock` (wall time, since a Retry-After date is wall time) and
    `random` (the jitter) are here so that a test can run the policy without waiting."""

    initial_s: float = INITIAL_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    max_tries: int = MAX_TRIES
    total_s: float = TOTAL_S
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    random: Callable[[], float] = random.random

    def delay(self, tries: int) -> float:
        """The computed wait after `tries` failed tries (1 or more): doubled each time, capped, less 0-25%."""
        computed = min(self.initial_s * 2.0 ** min(tries - 1, 1000), self.max_delay_s)
        return computed * (1 - JITTER * self.random())

    def next_wait(self, tries: int, started: float, asked: float | None = None) -> float | None:
        """The wait before the next try, after `tries` failed ones since `started` (a `clock` reading), or None to
        give up: the tries are spent, or the wait would end past the bound. `asked` is the server's Retry-After,
        used as given when positive (a zero or negative one, as the OpenAI client treats it, is no advice)."""
        if tries >= self.max_tries:
            return None
        wait = asked if asked is not None and asked > 0 else self.delay(tries)
        if not math.isfinite(wait) or self.clock() - started + wait > self.total_s:
            return None
        return wait
