"""Intervals, paired tests and summaries: checked against textbook values and scipy."""

import math
import warnings

import numpy as np
import pytest

from medtune.evaluation import stats

# ---------------------------------------------------------------- the hand-written primitives scipy replaced


def wilson_by_hand(correct: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    if n == 0:
        return 0.0, 0.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    lo = 0.0 if correct == 0 else max(0.0, centre - half)
    return lo, 1.0 if correct == n else min(1.0, centre + half)


def mcnemar_p_by_hand(only_tuned: int, only_base: int) -> float:
    n = only_tuned + only_base
    return 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, k) for k in range(min(only_tuned, only_base) + 1)) / 2**n)


def bootstrap_by_hand(base: list[float], tuned: list[float], seed: int = 0, n_boot: int = 10_000) -> dict:
    diffs = np.asarray(tuned, dtype=np.float64) - np.asarray(base, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([diffs[rng.integers(0, diffs.size, size=(min(1000, n_boot - i), diffs.size))].mean(axis=1)
                            for i in range(0, n_boot, 1000)])
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"delta": float(diffs.mean()), "ci95": [float(lo), float(hi)], "n": int(diffs.size)}


# ---------------------------------------------------------------- primitives


def test_wilson_interval_textbook_values():
    assert stats.wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 0.0)
    for n in range(1, 40):  # exact bounds at the ends (plots draw lower = accuracy - bound)
        assert stats.wilson_interval(0, n)[0] == 0.0 and stats.wilson_interval(n, n)[1] == 1.0


def test_wilson_interval_equals_the_hand_written_formula_it_replaced():
    worst = max(abs(x - y) for n in range(201) for k in range(n + 1)
                for x, y in zip(stats.wilson_interval(k, n), wilson_by_hand(k, n)))
    assert worst < 1e-12
    assert all(type(b) is float for b in stats.wilson_interval(3, 20))  # plain floats: results.json, plots


def test_mcnemar_exact_p_value():
    scipy_stats = pytest.importorskip("scipy.stats")
    base = [True] * 30 + [False] * 12 + [True] * 3 + [False] * 55
    tuned = [True] * 30 + [True] * 12 + [False] * 3 + [False] * 55
    out = stats.mcnemar(base, tuned)
    assert (out["only_tuned_correct"], out["only_base_correct"]) == (12, 3)
    assert out["p_value"] == pytest.approx(scipy_stats.binomtest(3, 15, 0.5).pvalue)
    assert stats.mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_mcnemar_equals_the_exact_sum_it_replaced():
    for b in range(0, 90, 3):
        for c in range(0, 90, 2):
            base, tuned = [True] * b + [False] * c + [True] * 5, [False] * b + [True] * c + [True] * 5
            out = stats.mcnemar(base, tuned)
            assert (out["only_tuned_correct"], out["only_base_correct"]) == (c, b)
            assert out["p_value"] == pytest.approx(mcnemar_p_by_hand(b, c), rel=1e-12, abs=1e-15)


def test_paired_bootstrap_is_seeded_and_covers_the_delta():
    base = [i % 3 == 0 for i in range(200)]
    tuned = [i % 2 == 0 for i in range(200)]
    a = stats.paired_bootstrap(base, tuned, seed=1, n_boot=2000)
    b = stats.paired_bootstrap(base, tuned, seed=1, n_boot=2000)
    assert a == b and a != stats.paired_bootstrap(base, tuned, seed=2, n_boot=2000)
    assert a["delta"] == pytest.approx(sum(tuned) / 200 - sum(base) / 200)
    assert a["ci95"][0] < a["delta"] < a["ci95"][1]
    same = stats.paired_bootstrap([1.0, 0.0], [1.0, 0.0])
    assert same["delta"] == 0.0 and same["ci95"] == [0.0, 0.0]


def realistic_pairs() -> list[tuple[list, list]]:
    """Accuracy flags, similarity scores and judge scores (1 to 5) of two systems on 20 to 500 items."""
    rng = np.random.default_rng(3)
    out = []
    for n in (20, 100, 500):
        out.append((list(rng.random(n) < 0.5), list(rng.random(n) < 0.6)))
        base = rng.random(n) * 0.7
        out.append((list(base), list(np.clip(base + rng.normal(0.05, 0.2, n), 0, 1))))
        out.append((list(rng.integers(1, 6, n).astype(float)), list(rng.integers(2, 6, n).astype(float))))
    return out


def test_paired_bootstrap_agrees_with_the_hand_written_one_it_replaced():
    for base, tuned in realistic_pairs():
        for seed in (0, 1):
            new, old = stats.paired_bootstrap(base, tuned, seed), bootstrap_by_hand(base, tuned, seed)
            assert new["n"] == old["n"] and new["delta"] == pytest.approx(old["delta"], abs=1e-12)
            # other random draws could move the bounds a little; within 0.02 of the old ones on these cases
            assert new["ci95"] == pytest.approx(old["ci95"], abs=0.02)


def test_degenerate_samples_give_an_interval_and_a_p_value_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # scipy's warnings (degenerate data, one observation) must not reach users
        assert stats.paired_bootstrap([], []) == {"delta": 0.0, "ci95": [0.0, 0.0], "n": 0}
        assert stats.paired_bootstrap([0.25], [0.75]) == {"delta": 0.5, "ci95": [0.5, 0.5], "n": 1}
        same = stats.paired_bootstrap([2.0] * 12, [5.0] * 12)
        assert same == {"delta": 3.0, "ci95": [3.0, 3.0], "n": 12}
        assert stats.paired_p_value([], []) == stats.paired_p_value([0.25], [0.75]) == 1.0
        assert stats.paired_p_value([0.4] * 8, [0.4] * 8) == 1.0
        assert stats.paired_p_value([2.0] * 12, [5.0] * 12) == pytest.approx(2 / 2**12)  # the exact sign-flip p


def test_paired_p_value_is_a_seeded_sign_flip_test():
    rng = np.random.default_rng(5)
    base = rng.random(60)
    shifted, noise = list(base + rng.normal(0.15, 0.2, 60)), list(base + rng.normal(0.0, 0.2, 60))
    p = stats.paired_p_value(list(base), shifted, seed=4)
    assert p == stats.paired_p_value(list(base), shifted, seed=4) and 0 < p < 0.001
    assert stats.paired_p_value(list(base), noise, seed=4) > 0.05
    assert stats.paired_p_value(shifted, list(base), seed=4) == p  # two-sided: the sign of the difference is moot
    # 7 items: all 128 sign flips are enumerated, so the p is exact and the seed does not matter
    small = [0.1, 0.3, 0.2, 0.4, 0.25, -0.05, 0.15]
    assert stats.paired_p_value([0.0] * 7, small, seed=0) == stats.paired_p_value([0.0] * 7, small, seed=9) == 4 / 128


def test_holm_known_example_and_never_below_the_raw_p():
    assert stats.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert stats.holm([]) == [] and stats.holm([0.3]) == [0.3] and stats.holm([0.6, 0.7]) == [1.0, 1.0]
    rng = np.random.default_rng(11)
    for m in range(1, 40):
        p = list(rng.random(m) ** 3)
        adjusted = stats.holm(p)
        assert all(p_i <= a_i <= 1.0 for p_i, a_i in zip(p, adjusted))
        order = np.argsort(p, kind="stable")
        assert all(np.diff(np.asarray(adjusted)[order]) >= 0)  # the order of the raw p-values is kept


def test_wins_ties_losses():
    assert stats.wins_ties_losses([1, 0, 1, 0], [1, 1, 0, 0]) == {"wins": 1, "ties": 2, "losses": 1}
    assert stats.wins_ties_losses([0.50, 0.2], [0.505, 0.9], tol=0.01) == {"wins": 1, "ties": 1, "losses": 0}


def test_similarity_summary_shares():
    out = stats.similarity_summary([0.9, 0.7, 0.5, 0.3, 0.1])
    assert out["mean"] == pytest.approx(0.5) and out["median"] == 0.5
    assert out["good_share"] == pytest.approx(0.4) and out["poor_share"] == pytest.approx(0.4)
