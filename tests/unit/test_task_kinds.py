"""Each task kind's summaries and paired figures from item records (the lines of items.jsonl), without a model:
multiple choice, open-ended answers, the judge; earlier runs' files read back into the same figures."""

import json

import pytest

from fixture_data import DATA
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.records import ItemRecord, read_items
from medtune.evaluation.results import read_results
from medtune.evaluation.tasks import KINDS, MCQTask, OpenTask

RUNS = DATA / "eval_runs"  # results.json and items.jsonl written by medtune 0.1.0's evaluation (SOURCES.md)
MCQ, OPEN = MCQTask("t", [], "here"), OpenTask("t", [], "here")


def item(i, correct, **fields) -> ItemRecord:
    """A record as items.jsonl holds it: the given fields over the keys every line has."""
    base = {"system": "s", "task": "t", "id": f"q{i}", "source": f"t.jsonl:{i}", "question": "q", "gold": "A",
            "correct": correct}
    return ItemRecord.from_json({**base, **fields})


def test_mcq_summary_generate_mode():
    records = [item(0, True, parsed=True, format_ok=True, reasoning="a b c", reasoning_tokens=None),
               item(1, False, parsed=False, format_ok=False, reasoning="", finish_reason="length"),
               item(2, False, parsed=True, format_ok=True, reasoning_tokens=10)]
    out = MCQ.summary(records, "generate").to_json()
    assert out["accuracy"] == pytest.approx(1 / 3) and out["items"] == 3
    assert out["unparseable"] == 1 and out["truncated"] == 1
    assert out["format_compliance"] == pytest.approx(2 / 3)
    assert out["mean_reasoning_tokens"] == pytest.approx((3 + 0 + 10) / 3)
    assert out["ci95"][0] < out["accuracy"] < out["ci95"][1]


def test_paired_accuracy_and_similarity_match_items_by_id():
    base = [item(i, i < 5, scores={"similarity": 0.5}) for i in range(10)]
    tuned = [item(i, i < 8, scores={"similarity": 0.6}) for i in reversed(range(10))]
    out = MCQ.paired(base, tuned, seed=0)
    assert out["items"] == 10
    assert out["accuracy"]["delta"] == pytest.approx(0.3)
    assert out["accuracy"]["wins"] == 3 and out["accuracy"]["losses"] == 0
    assert out["accuracy"]["only_tuned_correct"] == 3
    similar = OPEN.paired(base, tuned, seed=0)
    assert "accuracy" not in similar
    assert similar["similarity"]["delta"] == pytest.approx(0.1) and similar["similarity"]["wins"] == 10


def test_paired_judge_deltas_skip_failed_judgments():
    ok = {"failed": False, "scores": {c: 2 if c == "correctness" else 4 for c in CRITERIA}}
    better = {"failed": False, "scores": {c: 4 for c in CRITERIA}}
    base = [item(0, None, scores={"judge": ok}), item(1, None, scores={"judge": ok})]
    tuned = [item(0, None, scores={"judge": better}), item(1, None, scores={"judge": {"failed": True}})]
    out = OPEN.paired(base, tuned, seed=0)
    assert out["judge"]["correctness"]["delta"] == 2.0 and out["judge"]["correctness"]["n"] == 1
    assert OPEN.summary(tuned, "generate").judge == {"judged": 1, "failed": 1, **{c: 4 for c in CRITERIA}}


def test_items_too_long_to_run_count_as_wrong_and_apart_from_unparseable():
    never_ran = {"parsed": None, "format_ok": None, "error": "too long: the prompt has 5000 tokens", "reasoning": None}
    records = [item(0, True, parsed=True, format_ok=True, reasoning_tokens=4, error=None),
               item(1, False, parsed=False, format_ok=False, reasoning_tokens=2, error=None),
               item(2, False, **never_ran)]
    out = MCQ.summary(records, "generate").to_json()
    assert out["items"] == 3 and out["accuracy"] == pytest.approx(1 / 3)
    assert (out["unparseable"], out["too_long"]) == (1, 1)
    assert out["format_compliance"] == 0.5 and out["mean_reasoning_tokens"] == 3  # over the items that ran
    assert "too_long" not in MCQ.summary([item(0, True, parsed=True)], "loglik").to_json()  # nothing generated
    assert OPEN.summary([item(3, None, **never_ran)], "generate").to_json()["too_long"] == 1


def test_answers_the_safety_layer_replaced_are_wrong_and_counted_apart_from_unparseable():
    refused = {"action": "refuse", "layer": "classifier", "category": "self_harm", "stage": "request"}
    records = [item(0, True, parsed=True, format_ok=True, safety=None),
               item(1, False, parsed=False, format_ok=False, safety=None),
               item(2, False, parsed=False, format_ok=False, safety=refused)]
    out = MCQ.summary(records, "generate").to_json()
    assert out["accuracy"] == pytest.approx(1 / 3)
    assert (out["unparseable"], out["safety_replaced"]) == (1, 1)


# ---------------------------------------------------------------- evaluations written by medtune 0.1.0


@pytest.mark.parametrize("run", ["loglik", "generate", "screen"])
def test_an_earlier_runs_files_load_and_give_the_same_figures(run):
    """items.jsonl and results.json written before the task classes: every line reads back into a record that
    writes the same line, results.json reads back whole, and each kind's summary of the records and its paired
    figures are those the file holds (the bootstrap intervals to 1e-9: the same draws)."""
    folder = RUNS / run
    lines = [json.loads(line) for line in (folder / "items.jsonl").read_text().splitlines()]
    records = read_items(folder / "items.jsonl")
    assert [r.to_json() for r in records] == lines
    stored = json.loads((folder / "results.json").read_text())
    results = read_results(folder / "results.json")
    assert results.to_json() == stored
    for label, system in results.systems.items():
        for name, task in system.tasks.items():
            mine = [r for r in records if (r.system, r.task) == (label, name)]
            kind = KINDS[task.kind](name, [], task.origin)
            figures = stored["systems"][label]["tasks"][name]["metrics"]
            assert _close(kind.summary(mine, results.mode).to_json(), figures)
    for name, paired in stored["paired"].items():
        kind = KINDS[results.kinds()[name]](name, [], "")
        base, tuned = ([r for r in records if (r.system, r.task) == (label, name)] for label in ("base", "tuned"))
        assert _close(kind.paired(base, tuned, results.seed), paired)


def _close(a, b) -> bool:
    """Equal, numbers to 1e-9 (nested dicts and lists)."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return isinstance(b, (list, tuple)) and len(a) == len(b) and all(_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, (int, float)):
        return a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b
