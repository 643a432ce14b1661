"""Numbers that say how sure a result is: accuracy intervals, paired base-versus-tuned differences, summaries.

Paired comparisons read per-item records (the lines of items.jsonl) of two systems on the same task and match
them by item id, so both must have been evaluated on the same items.
"""

from __future__ import annotations

from statistics import mean, median

import numpy as np
from scipy import stats as scipy_stats

Z95 = 1.959963984540054
GOOD_SIMILARITY, POOR_SIMILARITY = 0.7, 0.3
BATCH = 1000  # resamples drawn at once: keeps memory at BATCH x n items whatever n_boot is


def wilson_interval(correct: int, n: int, z: float = Z95) -> tuple[float, float]:
    """95% Wilson score interval for a proportion: stays inside [0, 1] and is sane for small n or p near 0/1.
    At 0 or n successes scipy returns exactly 0 or 1 (plots draw lower = accuracy - bound)."""
    if n == 0:  # binomtest needs n >= 1; an empty task has no accuracy to bound
        return 0.0, 0.0
    level = 1 - 2 * float(scipy_stats.norm.sf(z))
    ci = scipy_stats.binomtest(correct, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def accuracy(flags: list[bool]) -> dict:
    lo, hi = wilson_interval(sum(flags), len(flags))
    return {"accuracy": sum(flags) / len(flags) if flags else 0.0, "ci95": [lo, hi], "items": len(flags)}


def mcnemar(base: list[bool], tuned: list[bool]) -> dict:
    """Exact McNemar test on discordant pairs: is 'only tuned right' more or less common than 'only base right'?"""
    only_tuned = sum(t and not b for b, t in zip(base, tuned))
    only_base = sum(b and not t for b, t in zip(base, tuned))
    n = only_tuned + only_base
    # two-sided exact binomial test with p = 1/2 on the discordant pairs; none of them: nothing differs
    p = 1.0 if n == 0 else float(scipy_stats.binomtest(min(only_tuned, only_base), n, 0.5).pvalue)
    return {"only_tuned_correct": only_tuned, "only_base_correct": only_base, "p_value": p}


def paired_bootstrap(base: list[float], tuned: list[float], seed: int = 0, n_boot: int = 10_000) -> dict:
    """Mean of (tuned - base) per item, with a 95% percentile interval from resampling items: the one-sample
    bootstrap of the per-item differences is the paired bootstrap."""
    diffs = _differences(base, tuned)
    if diffs.size == 0:
        return {"delta": 0.0, "ci95": [0.0, 0.0], "n": 0}
    delta = float(diffs.mean())
    # one item, or every item the same difference: every resample has the same mean (scipy refuses one item)
    if np.ptp(diffs) == 0:
        return {"delta": delta, "ci95": [delta, delta], "n": int(diffs.size)}
    ci = scipy_stats.bootstrap((diffs,), np.mean, n_resamples=n_boot, batch=BATCH, method="percentile",
                               rng=np.random.default_rng(seed)).confidence_interval
    return {"delta": delta, "ci95": [float(ci.low), float(ci.high)], "n": int(diffs.size)}


def paired_p_value(base: list[float], tuned: list[float], seed: int = 0, n_resamples: int = 9_999) -> float:
    """Two-sided p-value of the mean of (tuned - base) per item: a sign-flip permutation test. Under "no
    difference" each item's two scores are exchangeable, so each difference is as likely with either sign; the
    test flips signs (every one of the 2^n flips when that is at most n_resamples, so exact for n <= 13), needs no
    assumption on the scores' distribution, and never gives p = 0. The bootstrap's own "share of resampled means
    past 0, doubled" is too small over a few items and is 0 whenever no resample crosses 0."""
    diffs = _differences(base, tuned)
    if diffs.size < 2 or not diffs.any():  # one item or none, or no item differs: nothing to test
        return 1.0
    test = scipy_stats.permutation_test((diffs,), np.mean, permutation_type="samples", n_resamples=n_resamples,
                                        batch=BATCH, rng=np.random.default_rng(seed))
    return float(test.pvalue)


def _differences(base: list[float], tuned: list[float]) -> np.ndarray:
    return np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given: the k-th smallest of m p-values times (m - k + 1), made
    non-decreasing in that order, capped at 1. Written here because scipy has only Benjamini-Hochberg
    (false_discovery_control), which bounds the share of false findings, not the chance of any."""
    m, adjusted, running = len(p_values), [0.0] * len(p_values), 0.0
    for rank, i in enumerate(sorted(range(m), key=p_values.__getitem__)):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def wins_ties_losses(base: list[float], tuned: list[float], tol: float = 0.0) -> dict:
    """Per item: tuned better (win), equal within tol (tie), worse (loss)."""
    wins = sum(t - b > tol for b, t in zip(base, tuned))
    losses = sum(b - t > tol for b, t in zip(base, tuned))
    return {"wins": wins, "ties": len(base) - wins - losses, "losses": losses}


def describe(values: list[float]) -> dict:
    if not values:
        return {"n": 0}
    return {"n": len(values), "mean": mean(values), "median": median(values), "min": min(values), "max": max(values)}


def similarity_summary(scores: list[float]) -> dict:
    """Mean, median, and the shares of good (>= 0.7) and poor (<= 0.3) answers."""
    if not scores:
        return {"n": 0}
    n = len(scores)
    return {**describe(scores), "good_share": sum(s >= GOOD_SIMILARITY for s in scores) / n,
            "poor_share": sum(s <= POOR_SIMILARITY for s in scores) / n}


# ---------------------------------------------------------------- paired item records (the task kinds' tests)


def matched(a: list, b: list) -> list[tuple]:
    """(a's record, b's record) of each item both have, matched by item id, in b's order (records of one task)."""
    by_id = {str(r.id): r for r in a}
    return [(by_id[str(r.id)], r) for r in b if str(r.id) in by_id]


def paired_flags(pairs: list[tuple], get, seed: int) -> dict:
    """A yes/no outcome (get(record): True, False, or None where it does not apply) of a and b on the items where
    both have it: their rates, McNemar's exact p on the items where they disagree, and a bootstrap interval of the
    difference in rates (a - b)."""
    both = [(bool(get(x)), bool(get(y))) for x, y in pairs if get(x) is not None and get(y) is not None]
    if not both:
        return {"n": 0}
    a, b = [x for x, _ in both], [y for _, y in both]
    test, boot = mcnemar(b, a), paired_bootstrap(b, a, seed)
    return {"test": "mcnemar", "n": len(both), "a_value": sum(a) / len(a), "b_value": sum(b) / len(b),
            "delta": boot["delta"], "ci95": boot["ci95"], "p_value": test["p_value"],
            "only_a": test["only_tuned_correct"], "only_b": test["only_base_correct"]}


def paired_scores(pairs: list[tuple], get, seed: int, tie: float = 0.0) -> dict:
    """A score (get(record), None where missing) of a and b on the items where both have it: their means, the
    paired-bootstrap interval and p-value of the mean difference (a - b), and per item wins (a higher) / ties /
    losses."""
    both = [(get(x), get(y)) for x, y in pairs if get(x) is not None and get(y) is not None]
    if not both:
        return {"n": 0}
    a, b = [x for x, _ in both], [y for _, y in both]
    boot = paired_bootstrap(b, a, seed)
    return {"test": "bootstrap", "n": len(both), "a_value": mean(a), "b_value": mean(b), "delta": boot["delta"],
            "ci95": boot["ci95"], "p_value": paired_p_value(b, a, seed), **wins_ties_losses(b, a, tie)}
