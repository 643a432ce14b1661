"""Task files: loading the real benchmarks, prompts as lm-eval builds them, and one clear error per bad line."""

import json
import time

import pytest

from fixture_data import EVAL_DIR, MEDICAL_O1_SAMPLE
from medtune.errors import DataError
from medtune.evaluation.tasks import BUILTIN, MCQTask, OpenTask, load_task

GOOD = {"id": "q1", "question": "Which vitamin deficiency causes scurvy?",
        "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D"}, "answer": "B"}


def write(tmp_path, *rows, name="task.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name, count, n_options", [
    ("medqa", 60, 4), ("medmcqa", 60, 4), ("pubmedqa", 40, 3), ("mmlu_medical", 40, 4)])  # tests/data/SOURCES.md
def test_builtin_tasks_load_from_the_data_dir(name, count, n_options):
    task = load_task(name, str(EVAL_DIR))
    assert isinstance(task, MCQTask) and task.name == name and name in BUILTIN
    items = task.examples()
    assert len(items) == count
    assert all(len(ex.options) == n_options and ex.answer in ex.options for ex in items)
    assert len({ex.id for ex in items}) == count


def test_limit_takes_the_first_items():
    items = load_task("pubmedqa", str(EVAL_DIR), limit=7).examples()
    assert [ex.source.rsplit(":", 1)[1] for ex in items] == [str(i) for i in range(1, 8)]


def test_loglik_requests_letters_and_cloze(tmp_path):
    task = load_task(str(write(tmp_path, GOOD)))
    ex = task.examples()[0]
    context = "Question: Which vitamin deficiency causes scurvy?\nA. Vitamin A\nB. Vitamin C\nC. Vitamin D\nAnswer:"
    assert task.loglik_requests(ex, "letters") == [(context, " A"), (context, " B"), (context, " C")]
    cloze = "Question: Which vitamin deficiency causes scurvy?\nAnswer:"
    assert task.loglik_requests(ex, "cloze") == [(cloze, " Vitamin A"), (cloze, " Vitamin C"), (cloze, " Vitamin D")]
    assert task.choices(ex, "letters") == ["A", "B", "C"]
    assert task.choices(ex, "cloze") == ["Vitamin A", "Vitamin C", "Vitamin D"]


def test_generate_prompt_and_score(tmp_path):
    task = load_task(str(write(tmp_path, GOOD)))
    ex = task.examples()[0]
    messages = task.messages(ex, system="Be careful.")
    assert [m.role for m in messages] == ["system", "user"]
    assert "A. Vitamin A\nB. Vitamin C\nC. Vitamin D" in messages[1].content
    assert "The answer is X" in messages[1].content
    assert task.score_answer(ex, "The answer is B") == {"prediction": "B", "parsed": True, "correct": True}
    assert task.score_answer(ex, "Vitamin D") == {"prediction": "C", "parsed": True, "correct": False}
    assert task.score_answer(ex, "no idea") == {"prediction": None, "parsed": False, "correct": False}


def test_any_number_of_options_and_list_options(tmp_path):
    many = {**GOOD, "id": "q2", "options": {k: f"choice {k}" for k in "ABCDEFG"}, "answer": "G"}
    listed = {**GOOD, "id": "q3", "options": ["yes", "no", "maybe"], "answer": "C"}
    items = load_task(str(write(tmp_path, many, listed))).examples()
    assert list(items[0].options) == list("ABCDEFG")
    assert items[1].options == {"A": "yes", "B": "no", "C": "maybe"}


def test_missing_id_falls_back_to_the_line(tmp_path):
    row = {k: v for k, v in GOOD.items() if k != "id"}
    assert load_task(str(write(tmp_path, row, row))).examples()[1].id == "task.jsonl:2"


@pytest.mark.parametrize("row, message", [
    ({**GOOD, "answer": None}, ":2: field 'answer' is missing"),
    ({k: v for k, v in GOOD.items() if k != "answer"}, ":2: field 'answer' is missing"),
    ({**GOOD, "answer": "E"}, ":2: field 'answer' = 'E' is not one of the option letters A, B, C"),
    ({**GOOD, "options": {"A": "Vitamin A", "B": " ", "C": "x"}}, ":2: field 'options.B' is empty"),
    ({**GOOD, "options": {"A": "only one"}, "answer": "A"}, ":2: field 'options' must map at least two"),
    ({**GOOD, "options": "A or B"}, ":2: field 'options' must map at least two"),
    ({**GOOD, "options": {"A": "x", "A ": "y", "B": "z"}}, ":2: field 'options.A ': option letter 'A' appears twice"),
    ({**GOOD, "options": [{"key": "A", "value": "x"}, {"key": "A", "value": "y"}, {"key": "B", "value": "z"}]},
     ":2: field 'options[1].key': option letter 'A' appears twice"),
    ({**GOOD, "options": [{"key": "A", "value": "x"}, {"key": " ", "value": "y"}, {"key": "B", "value": "z"}]},
     ":2: field 'options[1].key' gives no option letter"),
    ({**GOOD, "options": [{"key": "A", "value": "x"}, {"key": None, "value": "y"}]},
     ":2: field 'options[1].key' gives no option letter"),
    ({**GOOD, "question": ""}, ":2: field 'question' is missing or empty"),
    ({**GOOD, "id": "q1"}, ":2: field 'id' = 'q1' repeats the id of"),
    ("{not json", ":2: invalid JSON"),
])
def test_malformed_task_files_name_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path, GOOD, row)
    with pytest.raises(DataError) as err:
        load_task(str(path))
    assert str(err.value).startswith(str(path)) and message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_names_and_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="task file not found"):
        load_task("medqa", str(tmp_path))
    with pytest.raises(DataError, match="no such task file"):
        load_task("nosuchtask.jsonl")
    with pytest.raises(DataError, match="eval.limit must be at least 1"):
        load_task("medqa", str(EVAL_DIR), limit=0)


def test_open_ended_medical_o1_file():
    task = load_task(str(MEDICAL_O1_SAMPLE), limit=5)
    assert isinstance(task, OpenTask)
    ex = task.examples()[0]
    assert ex.id == "medical_o1_sample.jsonl:1" and ex.question.startswith("In a 47-year-old man")
    assert ex.reference and "<think>" not in ex.reference
    assert [m.role for m in task.messages(ex, system="S")] == ["system", "user"]


def test_open_ended_prepared_chat_rows_keep_their_system_prompt(tmp_path):
    row = {"messages": [{"role": "system", "content": "Own prompt."}, {"role": "user", "content": "Q?"},
                        {"role": "assistant", "content": "<think>r</think>The answer."}]}
    task = load_task(str(write(tmp_path, row, name="test.jsonl")))
    ex = task.examples()[0]
    assert ex.reference == "The answer."
    assert [m.content for m in task.messages(ex, system="Other")] == ["Own prompt.", "Q?"]


# ---------------------------------------------------------------- which files are multiple choice


def test_a_file_is_mcq_when_any_line_is_and_then_every_line_must_be(tmp_path):
    open_row = {"question": "What causes scurvy?", "answer": "Vitamin C deficiency."}  # open-ended on its own
    path = write(tmp_path, open_row, GOOD, {**GOOD, "id": "q2"})
    with pytest.raises(DataError) as err:
        load_task(str(path))
    assert str(err.value).startswith(f"{path}:1: field 'options' is missing ({path}:2 is multiple choice")
    path = write(tmp_path, GOOD, {**open_row, "id": "q2"}, name="late.jsonl")
    with pytest.raises(DataError, match=r"late\.jsonl:2: field 'options' is missing"):
        load_task(str(path))


# ---------------------------------------------------------------- hub layouts, rebuilt from the bundled benchmark rows


def bundled_rows(name: str, n: int = 30) -> list[dict]:
    with (EVAL_DIR / f"{name}.jsonl").open(encoding="utf-8") as fh:
        return [json.loads(next(fh)) for _ in range(n)]


def same_items(task, rows: list[dict]) -> None:
    items = task.examples()
    assert isinstance(task, MCQTask) and len(items) == len(rows)
    for ex, row in zip(items, rows):
        assert (ex.question, ex.options, ex.answer) == (row["question"], row["options"], row["answer"])


def test_medqa_hub_and_huatuogpt_layout(tmp_path):
    rows = bundled_rows("medqa")
    hub = [{"question": r["question"], "options": r["options"], "answer_idx": r["answer"],
            "answer": r["options"][r["answer"]], "meta_info": "step1"} for r in rows]
    same_items(load_task(str(write(tmp_path, *hub))), rows)


def medmcqa_rows(rows: list[dict], base: int) -> list[dict]:
    return [{"id": r["id"], "question": r["question"], **dict(zip(("opa", "opb", "opc", "opd"), r["options"].values())),
             "cop": "ABCD".index(r["answer"]) + base, "choice_type": "single"} for r in rows]


def test_medmcqa_hub_layout_is_zero_based_and_the_original_release_one_based_when_told(tmp_path):
    rows = bundled_rows("medmcqa", 60)
    assert {r["answer"] for r in rows} == set("ABCD")  # every cop value occurs
    task = load_task(str(write(tmp_path, *medmcqa_rows(rows, 0), name="medmcqa0.jsonl")))  # the hub's layout
    same_items(task, rows)
    assert task.examples()[0].id == rows[0]["id"]
    path = write(tmp_path, *medmcqa_rows(rows, 1), name="medmcqa1.jsonl")
    for base in (0, 1):
        same_items(load_task(str(write(tmp_path, *medmcqa_rows(rows, base), name=f"b{base}.jsonl")),
                             answer_base=base), rows)
    with pytest.raises(DataError) as err:  # a 4 means 1-based, but only the user may say so
        load_task(str(path))
    first_four = next(i for i, r in enumerate(rows, 1) if r["answer"] == "D")
    assert str(err.value) == (f"{path}:{first_four}: field 'cop' = 4: this MedMCQA file looks 1-based (the original "
                              "release), but cop is read as the hub's 0-based label unless told otherwise; "
                              "set eval.answer_base=1")


def test_medmcqa_base_comes_from_the_layout_never_from_the_values(tmp_path):
    # a 1-based file whose answers happen to be 1 to 3 only: no value can tell, so eval.answer_base does
    rows = [{**MEDMCQA, "id": f"m{i}", "cop": cop} for i, cop in enumerate((1, 2, 3, 2))]
    path = write(tmp_path, *rows)
    assert [ex.answer for ex in load_task(str(path), answer_base=1).examples()] == ["A", "B", "C", "B"]
    assert [ex.answer for ex in load_task(str(path)).examples()] == ["B", "C", "D", "C"]  # the hub's 0-based cop
    one_based = write(tmp_path, MEDMCQA, {**MEDMCQA, "id": "m2", "cop": 4}, name="one.jsonl")
    with pytest.raises(DataError, match=r"one\.jsonl:1: field 'cop' = 0 is not an option number "
                                        r"\(1 to 4, eval.answer_base=1\)$"):
        load_task(str(one_based), answer_base=1)
    with pytest.raises(DataError, match=r"one\.jsonl:2: field 'cop' = 4 is not an option number "
                                        r"\(0 to 3, eval.answer_base=0\)$"):
        load_task(str(one_based), answer_base=0)
    with pytest.raises(DataError, match="eval.answer_base must be 0 or 1"):
        load_task(str(path), answer_base=2)


def test_eval_answer_base_reaches_the_task_from_the_config(tmp_path):
    from medtune import config as config_mod
    from medtune.evaluation.evaluate import load_tasks

    path = write(tmp_path, {**MEDMCQA, "cop": 1}, name="orig.jsonl")
    cfg = config_mod.load(None, values={"eval.tasks": [str(path)], "eval.answer_base": 1})
    assert cfg.eval.answer_base == 1 and config_mod.EvalConfig().answer_base is None
    [task] = load_tasks(cfg)
    assert task.examples()[0].answer == "A"


def test_mmlu_hub_layout(tmp_path):
    rows = bundled_rows("mmlu_medical")
    hub = [{"question": r["question"], "subject": "anatomy", "choices": list(r["options"].values()),
            "answer": "ABCD".index(r["answer"])} for r in rows]
    same_items(load_task(str(write(tmp_path, *hub))), rows)


def test_pubmedqa_hub_layout_builds_the_question_as_the_local_file_does(tmp_path):
    rows = bundled_rows("pubmedqa")
    hub = []
    for r in rows:  # undo SOURCES.md's construction: labelled context lines, then the question
        context, question = r["question"].removeprefix("Context:\n").split("\n\nQuestion: ")
        labels, contexts = zip(*(line.split(": ", 1) for line in context.split("\n")))
        hub.append({"pubid": int(r["id"].rsplit("-", 1)[1]), "question": question,
                    "context": {"contexts": list(contexts), "labels": list(labels), "meshes": []},
                    "long_answer": "The conclusion, which gives the answer away.",
                    "final_decision": r["options"][r["answer"]]})
    task = load_task(str(write(tmp_path, *hub)))
    same_items(task, rows)
    assert all("gives the answer away" not in ex.question for ex in task.examples())
    assert task.examples()[0].id == f"pubmedqa-pqal-{hub[0]['pubid']}"


MEDMCQA = {"id": "m1", "question": "Q?", "opa": "a", "opb": "b", "opc": "c", "opd": "d", "cop": 0}
MMLU = {"question": "Q?", "subject": "anatomy", "choices": ["w", "x", "y", "z"], "answer": 1}
PUBMEDQA = {"pubid": 1, "question": "Q?", "context": {"contexts": ["Text."], "labels": ["AIMS"]},
            "final_decision": "yes"}
MEDQA = {"question": "Q?", "options": {"A": "w", "B": "x"}, "answer_idx": "B", "answer": "x"}


@pytest.mark.parametrize("good, bad, message", [
    (MEDMCQA, {**MEDMCQA, "id": "m2", "opb": " "}, "field 'opb' is missing or empty"),
    (MEDMCQA, {**MEDMCQA, "id": "m2", "cop": 7}, "field 'cop' = 7 is not an option number (0 to 3)"),
    (MEDMCQA, {**MEDMCQA, "id": "m2", "cop": -1}, "field 'cop' = -1: no answer"),
    (MEDMCQA, {k: v for k, v in MEDMCQA.items() if k not in ("opa", "cop")} | {"id": "m2"}, "field 'opa' is missing"),
    (MMLU, {**MMLU, "answer": 4}, "field 'answer' = 4 is not an index of 'choices' (0 to 3)"),
    (MMLU, {**MMLU, "choices": ["w", ""]}, "field 'choices[1]' is empty"),
    (PUBMEDQA, {**PUBMEDQA, "pubid": 2, "final_decision": "perhaps"}, "field 'final_decision' = 'perhaps'"),
    (PUBMEDQA, {**PUBMEDQA, "pubid": 2, "context": {"contexts": ["a", "b"], "labels": ["X"]}},
     "field 'context.labels' must give one label per paragraph"),
    (MEDQA, {**MEDQA, "answer_idx": "E"}, "field 'answer_idx' = 'E' is not one of the option letters A, B"),
    (MEDQA, {**MEDQA, "answer": "w"}, "field 'answer' = 'w' is not the text of option B (field 'answer_idx')"),
])
def test_hub_layout_errors_name_file_line_and_the_layouts_own_field(tmp_path, good, bad, message):
    path = write(tmp_path, good, bad)
    with pytest.raises(DataError) as err:
        load_task(str(path))
    assert str(err.value).startswith(f"{path}:2: ") and message in str(err.value)


# ---------------------------------------------------------------- built-in names without a data folder


def test_builtin_names_without_a_data_dir_mean_their_hub_datasets():
    from medtune.evaluation.tasks.benchmarks import BENCHMARKS, MMLU_MEDICAL

    hub = {name: b.hub for name, b in BENCHMARKS.items()}
    assert set(hub) == set(BUILTIN)
    assert (hub["medqa"].id, hub["medqa"].split) == ("GBaker/MedQA-USMLE-4-options", "test")
    assert (hub["medmcqa"].id, hub["medmcqa"].split) == ("openlifescienceai/medmcqa", "validation")
    assert hub["pubmedqa"] == type(hub["pubmedqa"])("qiaojin/PubMedQA", "train", ("pqa_labeled",))
    assert (hub["mmlu_medical"].id, hub["mmlu_medical"].configs) == ("cais/mmlu", MMLU_MEDICAL)
    assert len(MMLU_MEDICAL) == 6 and "professional_medicine" in MMLU_MEDICAL


def hub_reachable() -> bool:
    from huggingface_hub import HfApi

    try:
        HfApi().dataset_info("cais/mmlu", timeout=5)
    except Exception:
        return False
    return True


@pytest.mark.timeout(60)
def test_builtin_name_offline_fails_fast_and_says_to_pass_a_data_dir_or_a_file():
    if hub_reachable():
        pytest.skip("the hub is reachable: loading would download the benchmark")
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load_task("medqa")
    message = str(err.value)
    assert time.monotonic() - start < 20
    assert message.startswith("GBaker/MedQA-USMLE-4-options: ") and "cannot be reached" in message
    assert "--data-dir DIR (a folder holding medqa.jsonl)" in message and "--task FILE" in message
    assert "data.train_file" not in message and "\n" not in message


@pytest.mark.timeout(60)
def test_other_hub_ids_fail_fast_with_the_eval_hint():
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load_task("medtune-tests/no-such-benchmark-3c9e", hub_split="validation", hub_config="x")
    assert time.monotonic() - start < 20
    message = str(err.value)
    assert message.startswith("medtune-tests/no-such-benchmark-3c9e: file not found")
    if "cannot be reached" in message:  # offline (this build machine); online it is plainly not found
        assert "--task FILE" in message and "data.train_file" not in message


def test_a_benchmark_is_one_entry(tmp_path, monkeypatch):
    """docs/evaluation.md's example: an entry names the task, its hub dataset and its local file; rows in a known
    layout (here MMLU's) need nothing else."""
    from medtune.evaluation.hub import HubDataset
    from medtune.evaluation.tasks import benchmarks, loading

    entry = benchmarks.Benchmark("mmlu_nutrition", HubDataset("cais/mmlu", "test", ("nutrition",)))
    monkeypatch.setitem(loading.BENCHMARKS, entry.name, entry)
    row = {"question": "Which vitamin deficiency causes scurvy?", "subject": "nutrition",
           "choices": ["Vitamin A", "Vitamin C", "Vitamin D", "Vitamin K"], "answer": 1}
    write(tmp_path, row, name="mmlu_nutrition.jsonl")
    task = load_task("mmlu_nutrition", str(tmp_path))
    assert (task.kind, task.name, task.examples()[0].answer) == ("mcq", "mmlu_nutrition", "B")
    with pytest.raises(DataError, match="mmlu_nutrition.jsonl: task file not found"):
        load_task("mmlu_nutrition", str(tmp_path / "elsewhere"))
