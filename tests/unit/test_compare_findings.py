"""medtune compare's findings as pure functions: a difference built to be significant gives its sentence with its
numbers, one built not to be gives none and is named in the one "no significant difference" line; p-values are
Holm-adjusted across all the paired tests of a comparison."""

import numpy as np
import pytest

from medtune.compare import findings, report
from medtune.compare.pairs import all_pairs, match
from medtune.evaluation.records import ItemRecord
from medtune.evaluation.tasks import KINDS


def mcq(system_correct: list[bool], task: str = "medqa") -> list[dict]:
    return [{"task": task, "id": f"q{i}", "correct": c} for i, c in enumerate(system_correct)]


def open_items(scores: list[float], task: str = "heldout") -> list[dict]:
    return [{"task": task, "id": f"o{i}", "scores": {"similarity": s}} for i, s in enumerate(scores)]


def records(lines: list[dict]) -> list[ItemRecord]:
    return [ItemRecord.from_json(line) for line in lines]


def rows_of(a: list[dict], b: list[dict], kinds: dict) -> list[dict]:
    """The rows compare reports: every paired test of the two inputs, Holm-adjusted together."""
    tasks = [KINDS[kind](name, [], "test") for name, kind in kinds.items()]
    return findings.adjust(all_pairs({"run-a": records(a), "run-b": records(b)}, tasks, seed=0))


def row(p_value: float, test: str = "mcnemar", n: int = 30, metric: str = "accuracy", task: str = "medqa") -> dict:
    """A paired row as pairs.py writes it, a ahead of b, with the p-value given."""
    return {"a": "run-a", "b": "run-b", "task": task, "metric": metric, "test": test, "n": n, "a_value": 0.6,
            "b_value": 0.4, "delta": 0.2, "ci95": [0.05, 0.35], "p_value": p_value}


def test_a_significant_accuracy_difference_is_one_sentence_with_its_numbers():
    a = mcq([True] * 25 + [False] * 5)
    b = mcq([True] * 10 + [False] * 20)  # every item b gets right, a does too: 15 discordant pairs, all for a
    (row,) = rows_of(a, b, {"medqa": "mcq"})
    assert (row["only_a"], row["only_b"], row["n"]) == (15, 0, 30)
    assert findings.finding(row) == ("run-a is more accurate than run-b on medqa: 83.3% vs 33.3%, "
                                     "McNemar p = 6.1e-05, Holm-adjusted p = 6.1e-05 (n = 30).")
    assert findings.no_difference_line([row]) is None


def test_the_better_system_is_named_first_whichever_side_it_is_on():
    a, b = mcq([False] * 20), mcq([True] * 20)
    (row,) = rows_of(a, b, {"medqa": "mcq"})
    assert findings.finding(row).startswith("run-b is more accurate than run-a on medqa: 100.0% vs 0.0%")


def test_a_difference_that_is_not_significant_gives_no_sentence_and_one_summary_line():
    a = mcq([True] * 16 + [False] * 14)
    b = mcq([True] * 15 + [False] * 15)
    (row,) = rows_of(a, b, {"medqa": "mcq"})
    assert row["p_value"] == 1.0 and findings.finding(row) is None and findings.findings([row]) == []
    assert findings.no_difference_line([row]) == (
        "No significant difference on: medqa accuracy (run-a vs run-b: 53.3% vs 50.0%, McNemar p = 1, "
        "Holm-adjusted p = 1, n = 30).")


def test_a_similarity_gap_whose_bootstrap_interval_excludes_zero_is_a_finding():
    a = open_items([0.80 + 0.01 * (i % 5) for i in range(20)])
    b = open_items([0.50 + 0.01 * (i % 3) for i in range(20)])
    (row,) = rows_of(a, b, {"heldout": "open"})
    assert row["test"] == "bootstrap" and row["ci95"][0] > 0 and row["wins"] == 20
    sentence = findings.finding(row)
    assert sentence.startswith("run-a's answers are closer to the references than run-b's on heldout: "
                               "mean similarity 0.820 vs 0.510, difference +0.311, 95% CI [+0.")
    # 20 items all on one side: 1 in 10,000 sign flips is as extreme (the observed one), so p = 2 / 10,000
    assert sentence.endswith("(paired bootstrap), sign-flip p = 0.0002, Holm-adjusted p = 0.0002 (n = 20).")


def test_a_bootstrap_over_a_handful_of_items_is_never_a_finding():
    a, b = open_items([0.9, 0.8, 0.85, 0.9]), open_items([0.1, 0.2, 0.15, 0.1])
    (row,) = rows_of(a, b, {"heldout": "open"})
    assert row["ci95"][0] > 0 and findings.finding(row) is None
    assert "too few items for the bootstrap" in findings.no_difference_line([row])


def test_refusal_rates_on_unsafe_and_safe_rows_are_tested_apart():
    def safety(refused_unsafe: int, refused_safe: int) -> list[dict]:
        unsafe = [{"task": "xs", "id": f"u{i}", "label": "unsafe", "refused": i < refused_unsafe} for i in range(20)]
        return unsafe + [{"task": "xs", "id": f"s{i}", "label": "safe", "refused": i < refused_safe} for i in range(20)]

    rows = {r["metric"]: r for r in rows_of(safety(20, 1), safety(5, 1), {"xs": "safety"})}
    assert findings.finding(rows["refusal of unsafe requests"]).startswith(
        "run-a refuses more unsafe requests than run-b on xs: 100.0% vs 25.0%, McNemar p = ")
    assert findings.finding(rows["refusal of safe requests"]) is None


def test_judge_scores_give_a_sentence_per_criterion_that_differs():
    def judged(score: int) -> list[dict]:
        return [{"task": "heldout", "id": f"o{i}", "scores": {"judge": {"scores": {
            c: score if c == "correctness" else 3 for c in ("correctness", "reasoning", "hallucination",
                                                              "instruction_following", "safety")}}}}
            for i in range(12)]

    sentences = findings.findings(rows_of(judged(5), judged(2), {"heldout": "open"}))
    # 12 items, all +3: the exact sign-flip p is 2 / 2^12; five criteria tested, so Holm multiplies it by 5
    assert sentences == ["run-a gets higher judge correctness scores than run-b on heldout: mean 5.00 vs 2.00, "
                         "difference +3.00, 95% CI [+3.00, +3.00] (paired bootstrap), sign-flip p = 0.00049, "
                         "Holm-adjusted p = 0.0024 (n = 12)."]


def test_records_are_matched_by_task_and_id():
    a = mcq([True, True], "medqa") + mcq([False, False], "pubmedqa")
    b = mcq([False, False], "medqa") + mcq([True], "pubmedqa")
    pairs = match(records(a), records(b), "pubmedqa")
    assert [(x.task, x.id, y.task) for x, y in pairs] == [("pubmedqa", "q0", "pubmedqa")]
    assert KINDS["mcq"]("pubmedqa", [], "test").pair_rows(pairs, 0)[0]["n"] == 1


def test_holm_adjusts_every_row_of_a_comparison_together():
    rows = [row(p) for p in (0.01, 0.04, 0.03, 0.005)]
    adjusted = findings.adjust(rows)
    assert [r["p_adjusted"] for r in adjusted] == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert [r["p_value"] for r in adjusted] == [0.01, 0.04, 0.03, 0.005] and "p_adjusted" not in rows[0]  # pure
    assert [findings.significant(r) for r in adjusted] == [True, False, False, True]


def test_adjusted_p_values_are_never_below_the_raw_ones():
    rng = np.random.default_rng(2)
    for m in (1, 2, 5, 17, 60):
        adjusted = findings.adjust([row(float(p)) for p in rng.random(m) ** 4])
        assert all(r["p_value"] <= r["p_adjusted"] <= 1 for r in adjusted)


def test_a_raw_p_under_005_is_no_finding_when_holm_lifts_it():
    rows = findings.adjust([row(0.03), *(row(0.5, metric="format") for _ in range(4))])
    assert rows[0]["p_adjusted"] == pytest.approx(0.15)
    assert findings.finding(rows[0]) is None and findings.findings(rows) == []
    assert ("medqa accuracy (run-a vs run-b: 60.0% vs 40.0%, McNemar p = 0.03, Holm-adjusted p = 0.15, n = 30)"
            in findings.no_difference_line(rows))
    (alone,) = findings.adjust([row(0.03)])  # the same test made alone is a finding
    assert findings.finding(alone) == ("run-a is more accurate than run-b on medqa: 60.0% vs 40.0%, McNemar p = 0.03, "
                                       "Holm-adjusted p = 0.03 (n = 30).")


def test_bootstrap_rows_are_adjusted_too_and_still_need_enough_items():
    rows = findings.adjust([row(0.001, "bootstrap", 30, "similarity"), row(0.001, "bootstrap", 6, "judge safety")])
    assert [r["p_adjusted"] for r in rows] == pytest.approx([0.002, 0.002])
    assert [findings.significant(r) for r in rows] == [True, False]  # 6 items: too few, whatever the p


def test_a_row_without_a_p_value_cannot_be_adjusted():
    bare = row(0.01)
    del bare["p_value"]
    with pytest.raises(ValueError, match="medqa accuracy \\(run-a vs run-b\\)"):
        findings.adjust([row(0.2), bare])


def test_the_report_says_how_many_tests_were_adjusted_and_shows_both_p_values():
    assert findings.tests_made([]) is None
    assert findings.tests_made([row(0.2)]) == "1 paired test: its p needs no adjustment"
    rows = findings.adjust([row(0.004), *(row(0.5, "bootstrap", 20, "similarity") for _ in range(11))])
    results = {"paired": rows, "findings": {"significant": findings.findings(rows),
                                            "no_difference": findings.no_difference_line(rows), "measurements": []}}
    section = report.findings_section(results)
    assert section[2] == "12 paired tests, Holm-adjusted across all of them; a finding needs p (Holm) < 0.05."
    assert section[4].startswith("- run-a is more accurate than run-b on medqa: 60.0% vs 40.0%, McNemar p = 0.004, "
                                 "Holm-adjusted p = 0.048")
    table = report.paired_table(results)
    assert "| 95% CI (bootstrap) | p | p (Holm) | significant |" in table[2]
    assert "| 0.004 (McNemar) | 0.048 | yes |" in table[4] and "| 0.5 (sign-flip) | 1 | no |" in table[5]
    how = report.markdown({"inputs": {}, "tasks": {}, "systems": {}, "mode": "loglik", "seed": 0, **results})
    assert ("A finding needs a Holm-adjusted p < 0.05, and for scores at least 10 items; 12 paired tests, "
            "Holm-adjusted across all of them.") in how


def test_training_measurements_state_ratios_and_both_values():
    a = {"tokens_per_s": 410.0, "wall_s": 100.0, "peak_mem_mb": 3000.0, "trainable_params": 4_000_000,
         "final_val_loss": 1.25}
    b = {"tokens_per_s": 195.0, "wall_s": 210.0, "peak_mem_mb": 7500.0, "trainable_params": 4_000_000,
         "final_val_loss": 1.5}
    assert findings.training_measurements("run-a", a, "run-b", b) == [
        "run-a trained 2.10x faster than run-b (tokens/s 410 vs 195, median of the logged steps).",
        "run-a's run took 0.48x the wall time of run-b's (100 s vs 210 s; loading, evaluation and checkpoints "
        "included).",
        "run-a peaked at 0.40x the memory of run-b (3,000 MB vs 7,500 MB).",
        "run-a ended at a lower validation loss than run-b (1.2500 vs 1.5000; per token of each model's own "
        "tokenizer)."]
    assert findings.training_measurements("run-a", a, "model", {}) == []  # a model name has no training figures


def test_generation_speed_is_a_measured_ratio():
    assert findings.generation_measurement("heldout", "a", {"generation_tokens_per_s": 20.0}, "b",
                                           {"generation_tokens_per_s": 40.0}) == \
        "b generated 2.00x faster than a on heldout (tokens/s 40.0 vs 20.0 over the task's time, safety screening " \
        "included, model load and warm-up not, each in its own tokenizer's tokens)."


def test_a_speed_from_a_stored_evaluation_says_it_was_not_measured_side_by_side():
    sentence = findings.generation_measurement("heldout", "a", {"generation_tokens_per_s": 30.0}, "b",
                                               {"generation_tokens_per_s": 10.0}, side_by_side=False)
    assert sentence.startswith("a generated 3.00x faster than b on heldout (tokens/s 30.0 vs 10.0")
    assert sentence.endswith("not measured side by side: one evaluation is a stored one).")
