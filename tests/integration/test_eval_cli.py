"""`medtune eval` end to end through the command line, on tiny models and the real benchmark files."""

import json
from pathlib import Path

import pytest
from eval_helpers import ANSWER, EVAL_DIR, REASONING, make_adapter_run

from medtune.cli import main
from medtune.evaluation.tasks import load_task


def run(*argv) -> int:
    return main(["eval", *map(str, argv)])


def read(out: Path):
    results = json.loads((out / "results.json").read_text())
    items = [json.loads(line) for line in (out / "items.jsonl").read_text().splitlines()]
    return results, items


def test_generate_mode_end_to_end_on_20_items(tmp_path, answering_model, capsys):
    out = tmp_path / "eval"
    assert run("--model", answering_model, "--task", "mmlu_medical", "--data-dir", EVAL_DIR, "--limit", 20,
               "--mode", "generate", "--max-tokens", 24, "--batch-size", 8, "--out", out) == 0
    results, items = read(out)
    golds = [ex.answer for ex in load_task("mmlu_medical", str(EVAL_DIR), limit=20).examples()]
    metrics = results["systems"]["model"]["tasks"]["mmlu_medical"]["metrics"]
    assert metrics["items"] == 20 and metrics["accuracy"] == golds.count("B") / 20
    assert metrics["unparseable"] == 0 and metrics["format_compliance"] == 1.0
    assert metrics["ci95"][0] < metrics["accuracy"] < metrics["ci95"][1]
    assert len(items) == 20 and [r["gold"] for r in items] == golds
    first = items[0]
    assert (first["reasoning"], first["answer"], first["prediction"]) == (REASONING, ANSWER, "B")
    assert first["prompt"].endswith("<|assistant|>") and "A. " in first["prompt"]
    assert {"id", "prompt", "reasoning", "answer", "prediction", "gold", "correct", "scores"} <= set(first)
    assert (out / "report.md").read_text().count("| model | mmlu_medical | 20 |") == 1
    assert (out / "plots" / "accuracy.png").stat().st_size > 1000
    assert "accuracy" in capsys.readouterr().out


def test_random_model_answers_count_as_unparseable(tmp_path, tiny_llama):
    out = tmp_path / "eval"
    assert run("--model", tiny_llama, "--task", "medqa", "--data-dir", EVAL_DIR, "--limit", 4, "--mode", "generate",
               "--max-tokens", 8, "--out", out) == 0
    results, items = read(out)
    metrics = results["systems"]["model"]["tasks"]["medqa"]["metrics"]
    # the layer refuses medqa's first item (a reporting-an-error ethics vignette): wrong, but not unparseable
    assert metrics["unparseable"] == sum(not r["parsed"] and not r["safety"] for r in items) >= 1
    assert metrics["safety_replaced"] == sum(bool(r["safety"]) for r in items)
    assert metrics["accuracy"] == sum(r["correct"] for r in items) / 4
    assert all(r["prediction"] is None and not r["correct"] for r in items if not r["parsed"])


def test_two_models_paired_report(tmp_path, answering_model, tiny_llama):
    out = tmp_path / "eval"
    assert run("--model", answering_model, "--compare-model", tiny_llama, "--task", "mmlu_medical",
               "--data-dir", EVAL_DIR, "--limit", 12, "--mode", "generate", "--max-tokens", 24, "--out", out) == 0
    results, items = read(out)
    tuned = results["systems"]["tuned"]["tasks"]["mmlu_medical"]["metrics"]
    base = results["systems"]["base"]["tasks"]["mmlu_medical"]["metrics"]
    paired = results["paired"]["mmlu_medical"]["accuracy"]
    assert results["systems"]["base"]["model"] == str(tiny_llama)
    for system in results["systems"].values():  # each load and warm-up timed apart from the task
        assert system["load_s"] > 0 and system["warm_up_s"] > 0
        assert system["tasks"]["mmlu_medical"]["seconds"] > 0
    assert paired["delta"] == pytest.approx(tuned["accuracy"] - base["accuracy"])
    by_system = {s: {r["id"]: r["correct"] for r in items if r["system"] == s} for s in ("tuned", "base")}
    assert set(by_system["tuned"]) == set(by_system["base"])
    wins = sum(t and not by_system["base"][i] for i, t in by_system["tuned"].items())
    losses = sum(by_system["base"][i] and not t for i, t in by_system["tuned"].items())
    assert (paired["wins"], paired["losses"], paired["wins"] + paired["ties"] + paired["losses"]) == (wins, losses, 12)
    assert paired["ci95"][0] <= paired["delta"] <= paired["ci95"][1] and 0 <= paired["p_value"] <= 1
    assert "Tuned versus base" in (out / "report.md").read_text()
    assert (out / "plots" / "base_vs_tuned.png").is_file()


def test_run_dir_against_its_base_in_loglik_mode(tmp_path, tiny_llama):
    run_dir = make_adapter_run(tiny_llama, tmp_path / "run")  # its config.yaml names the data_dir
    assert run("--run", run_dir, "--compare-base", "--task", "medqa", "--limit", 6) == 0
    out = run_dir / "eval"  # results sit in the run by default
    results, items = read(out)
    assert results["systems"]["tuned"]["adapter"] == str(run_dir / "adapter")
    assert results["systems"]["base"]["adapter"] is None
    alone = tmp_path / "alone"
    assert run("--model", tiny_llama, "--task", "medqa", "--data-dir", EVAL_DIR, "--limit", 6, "--out", alone) == 0
    _, plain = read(alone)
    base_lls = [ll for r in items if r["system"] == "base" for ll in r["scores"]["logliks"]]
    tuned_lls = [ll for r in items if r["system"] == "tuned" for ll in r["scores"]["logliks"]]
    plain_lls = [ll for r in plain for ll in r["scores"]["logliks"]]
    assert base_lls == pytest.approx(plain_lls, abs=1e-4)  # the base is the model without the adapter
    assert tuned_lls != pytest.approx(base_lls, abs=1e-3)  # the adapter changes the scores
    assert results["paired"]["medqa"]["items"] == 6
    assert (out / "config.yaml").is_file()


def test_bad_task_file_is_one_line_and_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "1", "question": "q?", "options": {"A": "x", "B": "y"}, "answer": "A"}\n'
                   '{"id": "2", "question": "q?", "options": {"A": "x", "B": "y"}, "answer": "C"}\n')
    assert run("--model", tmp_path / "no-model-needed", "--task", bad) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"medtune eval: error: {bad}:2: field 'answer' = 'C' is not one of the option letters A, B")


def test_no_task_is_an_error(tmp_path, capsys):
    assert run("--model", tmp_path) == 2
    assert "no task to evaluate" in capsys.readouterr().err


@pytest.mark.parametrize("argv, key", [
    (["--batch-size", 0], "eval.batch_size"), (["--batch-size", -3], "eval.batch_size"),
    (["--max-tokens", 0], "eval.max_tokens"), (["eval.judge_workers=0"], "eval.judge_workers")])
def test_counts_below_one_are_refused_before_any_model_loads(tmp_path, capsys, argv, key):
    code = run("--model", tmp_path / "never-loaded", "--task", "medqa", "--data-dir", EVAL_DIR, "--limit", 2, *argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert err.startswith("medtune eval: error: ") and key in err and "at least 1" in err


def test_generate_mode_records_prompts_too_long_for_the_model_and_goes_on(tmp_path, tiny_llama):
    long_question = "Question: " + "word " * 6000  # the tiny llama's context is 4096 tokens
    options = {"A": "yes", "B": "no"}
    mcq = tmp_path / "mcq.jsonl"
    mcq.write_text("".join(json.dumps({"id": f"m{i}", "question": q, "options": options, "answer": "A"}) + "\n"
                           for i, q in enumerate(["Is water wet?", long_question, "Is fire hot?"])))
    open_file = tmp_path / "open.jsonl"
    open_file.write_text("".join(json.dumps({"id": f"o{i}", "messages": [
        {"role": "user", "content": q}, {"role": "assistant", "content": "Yes."}]}) + "\n"
        for i, q in enumerate([long_question, "Is ice cold?"])))
    out = tmp_path / "eval"
    assert run("--model", tiny_llama, "--task", mcq, "--task", open_file, "--mode", "generate", "--max-tokens", 4,
               "--out", out) == 0
    results, items = read(out)
    assert len({frozenset(r) for r in items}) == 1  # every line has the same keys, whatever the task
    failed = {r["id"]: r for r in items if r["error"]}
    assert set(failed) == {"m1", "o0"}
    assert all(r["error"].startswith("too long: the prompt has ") and r["answer"] is None for r in failed.values())
    assert (failed["m1"]["correct"], failed["m1"]["prediction"], failed["m1"]["parsed"]) == (False, None, None)
    assert failed["o0"]["scores"]["similarity"] == 0.0 and failed["o0"]["correct"] is None
    tasks = results["systems"]["model"]["tasks"]
    mcq_metrics = tasks["mcq"]["metrics"]
    ran = [r for r in items if r["task"] == "mcq" and not r["error"]]
    assert (mcq_metrics["items"], mcq_metrics["too_long"]) == (3, 1)
    assert mcq_metrics["accuracy"] == sum(r["correct"] for r in ran) / 3  # the item that never ran is wrong
    assert mcq_metrics["unparseable"] == sum(r["parsed"] is False for r in ran)  # and not unparseable
    assert tasks["open"]["metrics"]["too_long"] == 1 and tasks["open"]["metrics"]["items"] == 2
    assert "| too long |" in (out / "report.md").read_text()
