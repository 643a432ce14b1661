"""`medtune compare` end to end on two tiny runs and a model name: a run's stored eval is reused when it holds the
requested items, the others are evaluated on the same items; paired statistics, findings, report and plots."""

import json
import time
from pathlib import Path

import pytest
from eval_helpers import EVAL_DIR, open_task_file
from inference_helpers import make_run

from medtune.cli import main
from medtune.inference.engine import Engine

pytestmark = pytest.mark.slow  # evaluates several models end to end

LIMIT = 12
LOAD_S, START_S = 0.2, 1.0  # SlowStart's load, and the one-time start-up of the first forward pass in a process


def write_training_logs(run: Path, speed: float, peak: float, losses: list[float]) -> None:
    """The run.json and metrics.jsonl that `medtune train` leaves (make_run makes the adapter and config only)."""
    rows = [{"step": 0, "epoch": 0.0, "peak_mem_mb": peak / 2, "val_loss": losses[0] + 0.3}]
    rows += [{"step": 5 * (i + 1), "epoch": 0.1 * (i + 1), "peak_mem_mb": peak, "train_loss": loss,
              "tokens_per_s": speed + i} for i, loss in enumerate(losses)]
    rows[-1]["val_loss"] = losses[-1] + 0.1
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    info = {"model": "tiny-llama", "method": "lora", "total_params": 140_000, "trainable_params": 2_048,
            "global_step": 5 * len(losses), "wall_s": 600 / speed, "peak_mem_mb": peak,
            "final_train_loss": losses[-1], "final_val_loss": rows[-1]["val_loss"]}
    (run / "run.json").write_text(json.dumps(info))


@pytest.fixture(scope="module")
def study(tmp_path_factory, tiny_llama, one_thread):
    """Two runs (different adapters) and the base model by name, compared on MCQ and open-ended items; run-a was
    evaluated beforehand on exactly those items."""
    root = tmp_path_factory.mktemp("compare")
    run_a, run_b = make_run(tiny_llama, root / "run-a", 0.5), make_run(tiny_llama, root / "run-b", 2.0)
    write_training_logs(run_a, 400.0, 900.0, [3.0, 2.5, 2.0])
    write_training_logs(run_b, 200.0, 1800.0, [3.1, 2.9, 2.8])
    open_file = open_task_file(root / "open.jsonl")
    tasks = ["--task", "mmlu_medical", "--task", str(open_file), "--data-dir", str(EVAL_DIR), "--limit", str(LIMIT),
             "--max-tokens", "6"]
    assert main(["eval", "--run", str(run_a), *tasks]) == 0
    out = root / "out"
    argv = ["compare", str(run_a), str(run_b), str(tiny_llama), *tasks, "--out", str(out)]
    return argv, out, run_a, run_b


def test_compare_reuses_stored_items_evaluates_the_rest_and_writes_the_report(study, tiny_llama, capsys):
    argv, out, run_a, run_b = study
    assert main(argv) == 0
    console = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    inputs = results["inputs"]
    assert list(inputs) == ["run-a", "run-b", tiny_llama.name]
    assert inputs["run-a"]["evaluation"] == str(run_a / "eval")  # reused: same items, seed and settings
    assert inputs["run-b"]["evaluation"] == str(out / "evals" / "run-b")
    assert [i["evaluation_reused"] for i in inputs.values()] == [True, False, False]
    assert (out / "evals" / "run-b" / "items.jsonl").is_file() and inputs[tiny_llama.name]["training"] == {}
    assert inputs["run-a"]["training"]["tokens_per_s"] == 401.0  # the median of the logged windows
    assert results["tasks"] == {"mmlu_medical": {"kind": "mcq", "items": LIMIT}, "open": {"kind": "open", "items": 4}}
    accuracy = results["systems"]["run-b"]["mmlu_medical"]
    assert accuracy["items"] == LIMIT and accuracy["ci95"][0] <= accuracy["accuracy"] <= accuracy["ci95"][1]
    assert "mean" in results["systems"]["run-a"]["open"]["similarity"]
    paired = {(r["a"], r["b"], r["task"], r["metric"]): r for r in results["paired"]}
    assert len({(a, b) for a, b, _, _ in paired}) == 3  # every pair of the three inputs
    mcq = paired["run-a", "run-b", "mmlu_medical", "accuracy"]
    assert mcq["n"] == LIMIT and 0 <= mcq["p_value"] <= 1 and mcq["test"] == "mcnemar"
    assert mcq["delta"] == pytest.approx(results["systems"]["run-a"]["mmlu_medical"]["accuracy"] - accuracy["accuracy"])
    assert paired["run-a", "run-b", "open", "similarity"]["n"] == 4
    found = results["findings"]
    assert "run-a trained 2.00x faster than run-b (tokens/s 401 vs 201, median of the logged steps)." \
        in found["measurements"]
    assert found["no_difference"].startswith("No significant difference on: ")  # 12 and 4 items: nothing significant
    report = (out / "report.md").read_text()
    for heading in ("## Training", "## Multiple choice", "## Open-ended answers", "## Paired comparisons",
                    "## Findings", "### Measurements (not tests)", "![losses](plots/losses.png)"):
        assert heading in report
    assert set(results["plots"]) == {"plots/losses.png", "plots/accuracy.png", "plots/speed_memory.png"}
    assert all((out / p).stat().st_size > 5000 for p in results["plots"])
    assert f"{run_a / 'eval'} (reused)" in console and "mmlu_medical (12 items) accuracy: run-a " in console
    assert f"wrote {out / 'report.md'}" in console


def test_a_second_compare_reuses_every_evaluation(study, capsys):
    argv, out, run_a, _ = study
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert [i["evaluation"] for i in results["inputs"].values()] == [
        str(run_a / "eval"), *(str(out / "evals" / label) for label in list(results["inputs"])[1:])]
    assert "note:" not in capsys.readouterr().err


def test_other_items_are_evaluated_again_and_say_why(study, capsys):
    argv, out, run_a, run_b = study
    fewer = out.parent / "fewer"
    assert main(["compare", str(run_a), str(run_b), "--task", "mmlu_medical", "--data-dir", str(EVAL_DIR),
                 "--limit", "6", "--out", str(fewer)]) == 0
    err = capsys.readouterr().err
    assert f"{run_a / 'eval'}: mmlu_medical holds 12 other items than the 6 asked for: not reused for run-a" in err
    results = json.loads((fewer / "results.json").read_text())
    assert results["inputs"]["run-a"]["evaluation"] == str(fewer / "evals" / "run-a")
    assert results["paired"][0]["n"] == 6


class SlowStart(Engine):
    """An engine whose load takes LOAD_S, in a process whose first forward pass pays START_S once (as CUDA's context
    and kernel set-up do): costs that the first input evaluated used to carry in its task time."""

    started = False

    @classmethod
    def load(cls, **kwargs):
        time.sleep(LOAD_S)
        engine = super().load(**kwargs)
        engine.model.register_forward_pre_hook(_start_up)
        return engine


def _start_up(_module, _args) -> None:
    if not SlowStart.started:
        SlowStart.started = True
        time.sleep(START_S)


def test_speed_leaves_out_the_model_load_and_the_first_call_start_up(study, tiny_llama, tmp_path):
    from medtune.compare.study import compare

    _, _, _, run_b = study
    flags = {"eval.tasks": ["mmlu_medical"], "eval.data_dir": str(EVAL_DIR), "eval.limit": 4,
             "eval.mode": "generate", "eval.max_tokens": 4}
    results, _ = compare([str(run_b), str(tiny_llama)], flags, tmp_path, engine_cls=SlowStart)
    first, second = results["inputs"]["run-b"], results["inputs"][tiny_llama.name]
    assert first["load_s"] >= LOAD_S and second["load_s"] >= LOAD_S  # measured, and kept apart
    assert first["warm_up_s"] >= START_S > second["warm_up_s"]  # the process's start-up fell on the warm-up
    assert [m["mmlu_medical"].seconds < START_S for m in results["systems"].values()] == [True, True]
    assert f"| {first['load_s']:,.1f} s + {first['warm_up_s']:,.1f} s warm-up |" in (tmp_path / "report.md").read_text()


def test_a_config_file_then_overrides_then_flags_set_every_inputs_evaluation(study, tmp_path):
    _, _, run_a, run_b = study
    cfg = tmp_path / "eval.yaml"
    cfg.write_text(f"eval: {{tasks: [mmlu_medical], data_dir: '{EVAL_DIR}', limit: 8, mode: loglik}}\n")
    # the config file as a positional, the override after the flags (the command line hands it over)
    assert main(["compare", str(run_a), str(run_b), str(cfg), "--out", str(tmp_path / "one"), "eval.limit=5"]) == 0
    one = json.loads((tmp_path / "one" / "results.json").read_text())
    assert one["tasks"] == {"mmlu_medical": {"kind": "mcq", "items": 5}} and one["mode"] == "loglik"
    assert [i["evaluation_reused"] for i in one["inputs"].values()] == [False, False]  # run-a's eval had 12 items
    assert main(["compare", str(run_a), str(run_b), "--config", str(cfg), "eval.limit=5", "--limit", "4",
                 "--out", str(tmp_path / "two")]) == 0
    assert json.loads((tmp_path / "two" / "results.json").read_text())["paired"][0]["n"] == 4  # the flag wins


def test_a_setting_taken_for_an_input_is_a_clear_error(study, tmp_path, capsys):
    _, _, run_a, _ = study
    assert main(["compare", str(run_a), "eval.limit=5", "--task", "medqa", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        "medtune compare: error: compare needs at least two runs or models; eval.limit=5 is read as config file "
        "and key=value overrides, not as inputs")
    assert main(["compare", str(run_a), "x", "model.name=y", "--out", str(tmp_path)]) == 2
    assert "override model.name=y: each input names its own model: give it as an input" in capsys.readouterr().err


def test_help_explains_the_config_and_overrides(capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--config CONFIG" in text
    assert "then key=value overrides (set on every input's config), then the flags" in text


def test_one_input_is_a_one_line_error(tmp_path, capsys):
    assert main(["compare", str(tmp_path), "--task", "medqa"]) == 2
    assert capsys.readouterr().err.strip() == (
        "medtune compare: error: compare needs at least two runs or models (run directories, hub ids, folders)")


def test_judge_scores_get_their_bar_plot_when_present(tmp_path):
    from medtune.compare.evals import TaskFigures
    from medtune.compare.plots import judge
    from medtune.evaluation.judge import CRITERIA
    from medtune.evaluation.tasks import OpenSummary

    def system(score: float | None) -> dict:
        graded = {"judged": 4, "failed": 0, **{c: score for c in CRITERIA}} if score is not None else None
        return {"open": TaskFigures(OpenSummary(4, judge=graded), 1.0)}

    results = {"tasks": {"open": {"kind": "open", "items": 4}}, "systems": {"a": system(4.0), "b": system(2.5)}}
    assert judge(tmp_path / "judge.png", results).stat().st_size > 5000
    results["systems"] = {"a": system(None), "b": system(None)}
    assert judge(tmp_path / "none.png", results) is None  # no judge ran: no plot


def test_an_override_of_how_answers_are_written_evaluates_again_and_says_why(study, capsys):
    argv, out, run_a, _ = study
    other = out.parent / "no-layer"
    assert main([*argv[:-1], str(other), "safety.enabled=false"]) == 0
    err = capsys.readouterr().err
    assert f"{run_a / 'eval'}: made with safety.enabled = True, not False: not reused for run-a" in err
    results = json.loads((other / "results.json").read_text())
    assert results["inputs"]["run-a"]["evaluation"] == str(other / "evals" / "run-a")
