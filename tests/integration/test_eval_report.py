"""report.md and the plots, from results and item records made by hand (no model)."""

import json

from medtune.evaluation import stats
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.report import markdown, similarity_range, write_outputs


def results_for(tasks: dict, mode: str = "loglik") -> dict:
    return {"mode": mode, "seed": 1, "paired": {},
            "systems": {"model": {"model": "m", "adapter": None, "tasks": tasks}}}


def open_task(records: list[dict]) -> dict:
    return {"kind": "open", "items_per_s": 1.0, "metrics": stats.open_summary(records, CRITERIA)}


def test_the_heading_names_the_mode_only_when_multiple_choice_ran(tmp_path):
    records = [{"system": "model", "task": "open", "scores": {"similarity": 0.5}}]
    assert markdown(results_for({"open": open_task(records)}), [], tmp_path).startswith(
        "# medtune eval (open-ended answers generated, seed 1)")
    mcq = {"kind": "mcq", "items_per_s": 1.0, "metrics": stats.mcq_summary([{"correct": True, "parsed": True}])}
    assert markdown(results_for({"mcq": mcq}), [], tmp_path).startswith("# medtune eval (loglik mode, seed 1)")
    both = markdown(results_for({"mcq": mcq, "open": open_task(records)}, "generate"), [], tmp_path)
    assert both.startswith("# medtune eval (generate mode, open-ended answers generated, seed 1)")


def test_the_similarity_histogram_keeps_negative_scores(tmp_path):
    assert similarity_range({"model": [0.2, 0.9]}) == (0.0, 1.0)
    assert similarity_range({"tuned": [0.5], "base": [-0.6, 0.1]}) == (-0.6, 1.0)  # nothing falls outside
    records = [{"system": "model", "task": "open", "id": str(i), "scores": {"similarity": s}}
               for i, s in enumerate([-0.6, -0.1, 0.4, 0.95])]
    paths = write_outputs(tmp_path, results_for({"open": open_task(records)}, "generate"), records)
    assert tmp_path / "plots" / "similarity.png" in paths
    assert len((tmp_path / "items.jsonl").read_text().splitlines()) == 4 and json.loads(
        (tmp_path / "results.json").read_text())["mode"] == "generate"
