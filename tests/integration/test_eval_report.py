"""report.md and the plots, from results and item records made by hand (no model)."""

import json

from medtune.evaluation.records import ItemRecord, Scores
from medtune.evaluation.report import markdown, similarity_range, write_outputs
from medtune.evaluation.results import EvalResults, SystemResult, TaskResult
from medtune.evaluation.tasks import MCQTask, OpenTask


def results_for(tasks: dict, mode: str = "loglik") -> EvalResults:
    return EvalResults("now", "0", mode, "letters", 1, None, {}, {"model": SystemResult("m", None, "m", tasks=tasks)},
                       {})


def record(i: int, similarity: float | None = None, correct: bool | None = None) -> ItemRecord:
    return ItemRecord("model", "t", str(i), f"t.jsonl:{i}", "q", "A", correct=correct, parsed=correct is not None,
                      scores=Scores(similarity=similarity))


def open_task(records: list[ItemRecord]) -> TaskResult:
    return TaskResult("open", "here", 1.0, 1.0, OpenTask("t", [], "here").summary(records, "generate"))


def test_the_heading_names_the_mode_only_when_multiple_choice_ran(tmp_path):
    records = [record(0, 0.5)]
    assert markdown(results_for({"open": open_task(records)}), [], tmp_path).startswith(
        "# medtune eval (open-ended answers generated, seed 1)")
    mcq = TaskResult("mcq", "here", 1.0, 1.0, MCQTask("t", [], "here").summary([record(1, correct=True)], "loglik"))
    assert markdown(results_for({"mcq": mcq}), [], tmp_path).startswith("# medtune eval (loglik mode, seed 1)")
    both = markdown(results_for({"mcq": mcq, "open": open_task(records)}, "generate"), [], tmp_path)
    assert both.startswith("# medtune eval (generate mode, open-ended answers generated, seed 1)")
    assert "## Multiple choice" in both and "## Open-ended answers" in both and "judged" not in both


def test_the_similarity_histogram_keeps_negative_scores(tmp_path):
    assert similarity_range({"model": [0.2, 0.9]}) == (0.0, 1.0)
    assert similarity_range({"tuned": [0.5], "base": [-0.6, 0.1]}) == (-0.6, 1.0)  # nothing falls outside
    records = [record(i, s) for i, s in enumerate([-0.6, -0.1, 0.4, 0.95])]
    paths = write_outputs(tmp_path, results_for({"open": open_task(records)}, "generate"), records)
    assert tmp_path / "plots" / "similarity.png" in paths
    assert len((tmp_path / "items.jsonl").read_text().splitlines()) == 4 and json.loads(
        (tmp_path / "results.json").read_text())["mode"] == "generate"
