"""The retry policy of the endpoint client (medtune/backoff.py): which statuses are retried, Retry-After read as
seconds, milliseconds or an HTTP date, waits doubled with jitter and capped, and the bounds on tries and time."""

import email.utils

import pytest

from medtune.backoff import INITIAL_DELAY_S, MAX_DELAY_S, MAX_TRIES, TOTAL_S, Backoff, retry_after, retryable

NOW = 1_700_000_000.0


def test_overload_and_server_errors_are_retried_other_4xx_are_not():
    assert all(retryable(s) for s in (408, 409, 429, 500, 502, 503, 504))
    assert not any(retryable(s) for s in (400, 401, 403, 404, 422))


@pytest.mark.parametrize("headers, seconds", [
    ({"retry-after": "1"}, 1.0), ({"retry-after": "2.5"}, 2.5), ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
    ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
    ({"retry-after": "soon"}, None), ({}, None), (None, None)])
def test_retry_after_as_seconds_milliseconds_or_a_date(headers, seconds):
    assert retry_after(headers, NOW) == seconds


def test_waits_double_from_half_a_second_to_eight_less_up_to_a_quarter():
    slowest, fastest = Backoff(random=lambda: 0.0), Backoff(random=lambda: 1.0)
    assert [slowest.delay(n) for n in range(1, 7)] == [0.5, 1, 2, 4, 8, 8]
    assert [fastest.delay(n) for n in range(1, 4)] == [0.375, 0.75, 1.5]
    assert (INITIAL_DELAY_S, MAX_DELAY_S) == (0.5, 8.0)  # the OpenAI Python client's numbers


def test_retry_after_is_used_as_given_and_the_bounds_end_the_tries():
    now = [NOW]
    policy = Backoff(clock=lambda: now[0], random=lambda: 0.0)
    assert policy.next_wait(1, NOW, asked=3.0) == 3.0
    assert policy.next_wait(1, NOW, asked=0.0) == 0.5 and policy.next_wait(1, NOW, asked=-4.0) == 0.5  # no advice
    assert policy.next_wait(1, NOW, asked=TOTAL_S + 1) is None  # it could not pass before the bound
    assert policy.next_wait(MAX_TRIES, NOW) is None
    now[0] = NOW + TOTAL_S - 0.9
    assert policy.next_wait(2, NOW) is None  # a 1 s wait would end past the bound
    assert policy.next_wait(1, NOW) == 0.5


def test_a_server_that_never_recovers_costs_at_most_the_bound():
    now, waits = [NOW], []
    policy = Backoff(clock=lambda: now[0], sleep=lambda s: (waits.append(s), now.__setitem__(0, now[0] + s + 3.0)))
    tries = 1
    while (wait := policy.next_wait(tries, NOW)) is not None:  # each try itself takes 3 s
        policy.sleep(wait)
        tries += 1
    assert tries <= MAX_TRIES and now[0] - NOW <= TOTAL_S + 3.0 and sum(waits) <= TOTAL_S
