"""medtune compare's findings as pure functions: a difference built to be significant gives its sentence with its
numbers, one built not to be gives none and is named in the one "no significant difference" line."""

from medtune.compare import findings
from medtune.compare.pairs import all_pairs, match, task_rows


def mcq(system_correct: list[bool], task: str = "medqa") -> list[dict]:
    return [{"task": task, "id": f"q{i}", "correct": c} for i, c in enumerate(system_correct)]


def open_items(scores: list[float], task: str = "heldout") -> list[dict]:
    return [{"task": task, "id": f"o{i}", "scores": {"similarity": s}} for i, s in enumerate(scores)]


def rows_of(a: list[dict], b: list[dict], kinds: dict) -> list[dict]:
    return all_pairs({"run-a": a, "run-b": b}, kinds, seed=0)


def test_a_significant_accuracy_difference_is_one_sentence_with_its_numbers():
    a = mcq([True] * 25 + [False] * 5)
    b = mcq([True] * 10 + [False] * 20)  # every item b gets right, a does too: 15 discordant pairs, all for a
    (row,) = rows_of(a, b, {"medqa": "mcq"})
    assert (row["only_a"], row["only_b"], row["n"]) == (15, 0, 30)
    assert findings.finding(row) == ("run-a is more accurate than run-b on medqa: 83.3% vs 33.3%, "
                                     "McNemar p = 6.1e-05 (n = 30).")
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
        "No significant difference on: medqa accuracy (run-a vs run-b: 53.3% vs 50.0%, McNemar p = 1, n = 30).")


def test_a_similarity_gap_whose_bootstrap_interval_excludes_zero_is_a_finding():
    a = open_items([0.80 + 0.01 * (i % 5) for i in range(20)])
    b = open_items([0.50 + 0.01 * (i % 3) for i in range(20)])
    (row,) = rows_of(a, b, {"heldout": "open"})
    assert row["test"] == "bootstrap" and row["ci95"][0] > 0 and row["wins"] == 20
    sentence = findings.finding(row)
    assert sentence.startswith("run-a's answers are closer to the references than run-b's on heldout: "
                               "mean similarity 0.820 vs 0.510, difference +0.311, 95% CI [+0.")
    assert sentence.endswith("(paired bootstrap, n = 20).")


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
    assert sentences == ["run-a gets higher judge correctness scores than run-b on heldout: mean 5.00 vs 2.00, "
                         "difference +3.00, 95% CI [+3.00, +3.00] (paired bootstrap, n = 12)."]


def test_records_are_matched_by_task_and_id():
    a = mcq([True, True], "medqa") + mcq([False, False], "pubmedqa")
    b = mcq([False, False], "medqa") + mcq([True], "pubmedqa")
    pairs = match(a, b, "pubmedqa")
    assert [(x["task"], x["id"], y["task"]) for x, y in pairs] == [("pubmedqa", "q0", "pubmedqa")]
    assert task_rows(pairs, "mcq", 0)[0]["n"] == 1


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
