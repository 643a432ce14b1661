"""Intervals, paired tests and summaries: checked against textbook values and scipy."""

import pytest

from medtune.evaluation import stats


def test_wilson_interval_textbook_values():
    assert stats.wilson_interval(50, 100) == pytest.approx((0.4038, 0.5962), abs=1e-4)
    lo, hi = stats.wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    assert stats.wilson_interval(0, 0) == (0.0, 0.0)
    for n in range(1, 40):  # exact bounds at the ends (plots draw lower = accuracy - bound)
        assert stats.wilson_interval(0, n)[0] == 0.0 and stats.wilson_interval(n, n)[1] == 1.0


def test_wilson_interval_agrees_with_scipy():
    scipy_stats = pytest.importorskip("scipy.stats")
    for k, n in [(3, 20), (17, 20), (140, 200), (1, 1273)]:
        ci = scipy_stats.binomtest(k, n).proportion_ci(method="wilson")
        assert stats.wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_mcnemar_exact_p_value():
    scipy_stats = pytest.importorskip("scipy.stats")
    base = [True] * 30 + [False] * 12 + [True] * 3 + [False] * 55
    tuned = [True] * 30 + [True] * 12 + [False] * 3 + [False] * 55
    out = stats.mcnemar(base, tuned)
    assert (out["only_tuned_correct"], out["only_base_correct"]) == (12, 3)
    assert out["p_value"] == pytest.approx(scipy_stats.binomtest(3, 15, 0.5).pvalue)
    assert stats.mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_paired_bootstrap_is_seeded_and_covers_the_delta():
    base = [i % 3 == 0 for i in range(200)]
    tuned = [i % 2 == 0 for i in range(200)]
    a = stats.paired_bootstrap(base, tuned, seed=1, n_boot=2000)
    b = stats.paired_bootstrap(base, tuned, seed=1, n_boot=2000)
    assert a == b
    assert a["delta"] == pytest.approx(sum(tuned) / 200 - sum(base) / 200)
    assert a["ci95"][0] < a["delta"] < a["ci95"][1]
    same = stats.paired_bootstrap([1.0, 0.0], [1.0, 0.0])
    assert same["delta"] == 0.0 and same["ci95"] == [0.0, 0.0]


def test_wins_ties_losses():
    assert stats.wins_ties_losses([1, 0, 1, 0], [1, 1, 0, 0]) == {"wins": 1, "ties": 2, "losses": 1}
    assert stats.wins_ties_losses([0.50, 0.2], [0.505, 0.9], tol=0.01) == {"wins": 1, "ties": 1, "losses": 0}


def test_similarity_summary_shares():
    out = stats.similarity_summary([0.9, 0.7, 0.5, 0.3, 0.1])
    assert out["mean"] == pytest.approx(0.5) and out["median"] == 0.5
    assert out["good_share"] == pytest.approx(0.4) and out["poor_share"] == pytest.approx(0.4)


def record(i, correct, **extra):
    return {"id": f"q{i}", "correct": correct, **extra}


def test_mcq_summary_generate_mode():
    records = [record(0, True, parsed=True, format_ok=True, reasoning="a b c", reasoning_tokens=None),
               record(1, False, parsed=False, format_ok=False, reasoning="", finish_reason="length"),
               record(2, False, parsed=True, format_ok=True, reasoning_tokens=10)]
    out = stats.mcq_summary(records)
    assert out["accuracy"] == pytest.approx(1 / 3) and out["items"] == 3
    assert out["unparseable"] == 1 and out["truncated"] == 1
    assert out["format_compliance"] == pytest.approx(2 / 3)
    assert out["mean_reasoning_tokens"] == pytest.approx((3 + 0 + 10) / 3)
    assert out["ci95"][0] < out["accuracy"] < out["ci95"][1]


def test_paired_summary_matches_items_by_id():
    base = [record(i, i < 5, scores={"similarity": 0.5}) for i in range(10)]
    tuned = [record(i, i < 8, scores={"similarity": 0.6}) for i in reversed(range(10))]
    out = stats.paired_summary(base, tuned, seed=0)
    assert out["items"] == 10
    assert out["accuracy"]["delta"] == pytest.approx(0.3)
    assert out["accuracy"]["wins"] == 3 and out["accuracy"]["losses"] == 0
    assert out["accuracy"]["only_tuned_correct"] == 3
    assert out["similarity"]["delta"] == pytest.approx(0.1) and out["similarity"]["wins"] == 10


def test_paired_judge_deltas_skip_failed_judgments():
    ok = {"failed": False, "scores": {"correctness": 2, "safety": 4}}
    better = {"failed": False, "scores": {"correctness": 4, "safety": 4}}
    base = [record(0, True, scores={"judge": ok}), record(1, True, scores={"judge": ok})]
    tuned = [record(0, True, scores={"judge": better}), record(1, True, scores={"judge": {"failed": True}})]
    out = stats.paired_summary(base, tuned, criteria=("correctness", "safety"))
    assert out["judge"]["correctness"]["delta"] == 2.0 and out["judge"]["correctness"]["n"] == 1
    summary = stats.open_summary(tuned, criteria=("correctness", "safety"))
    assert summary["judge"] == {"judged": 1, "failed": 1, "correctness": 4, "safety": 4}


def test_items_too_long_to_run_count_as_wrong_and_apart_from_unparseable():
    never_ran = {"parsed": None, "format_ok": None, "error": "too long: the prompt has 5000 tokens", "reasoning": None}
    records = [record(0, True, parsed=True, format_ok=True, reasoning_tokens=4, error=None),
               record(1, False, parsed=False, format_ok=False, reasoning_tokens=2, error=None),
               record(2, False, **never_ran)]
    out = stats.mcq_summary(records)
    assert out["items"] == 3 and out["accuracy"] == pytest.approx(1 / 3)
    assert (out["unparseable"], out["too_long"]) == (1, 1)
    assert out["format_compliance"] == 0.5 and out["mean_reasoning_tokens"] == 3  # over the items that ran
    assert "too_long" not in stats.mcq_summary([record(0, True, parsed=True)])  # loglik: nothing is generated
    assert stats.open_summary([{"id": "o1", "correct": None, **never_ran}])["too_long"] == 1


def test_paired_summary_of_open_ended_items_has_no_accuracy():
    base = [record(i, None, scores={"similarity": 0.5}) for i in range(4)]
    tuned = [record(i, None, scores={"similarity": 0.7}) for i in range(4)]
    out = stats.paired_summary(base, tuned)
    assert "accuracy" not in out and out["similarity"]["delta"] == pytest.approx(0.2)


def test_answers_the_safety_layer_replaced_are_wrong_and_counted_apart_from_unparseable():
    refused = {"action": "refuse", "layer": "classifier", "category": "self_harm", "stage": "request"}
    records = [record(0, True, parsed=True, format_ok=True, safety=None),
               record(1, False, parsed=False, format_ok=False, safety=None),
               record(2, False, parsed=False, format_ok=False, safety=refused)]
    out = stats.mcq_summary(records)
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert (out["unparseable"], out["safety_replaced"]) == (1, 1)
