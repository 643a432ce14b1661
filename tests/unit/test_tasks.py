"""Task files: loading the real benchmarks, prompts as lm-eval builds them, and one clear error per bad line."""

import json
from pathlib import Path

import pytest

from medtune.errors import DataError
from medtune.evaluation.tasks import BUILTIN, MCQTask, OpenTask, load_task

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
EVAL_DIR = SHARED / "eval"

GOOD = {"id": "q1", "question": "Which vitamin deficiency causes scurvy?",
        "options": {"A": "Vitamin A", "B": "Vitamin C", "C": "Vitamin D"}, "answer": "B"}


def write(tmp_path, *rows, name="task.jsonl"):
    path = tmp_path / name
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.mark.parametrize("name, count, n_options", [
    ("medqa", 1273, 4), ("medmcqa", 4183, 4), ("pubmedqa", 500, 3), ("mmlu_medical", 1089, 4)])
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
    assert task.score(ex, "The answer is B") == {"prediction": "B", "parsed": True, "correct": True}
    assert task.score(ex, "Vitamin D") == {"prediction": "C", "parsed": True, "correct": False}
    assert task.score(ex, "no idea") == {"prediction": None, "parsed": False, "correct": False}


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
    with pytest.raises(DataError, match="needs eval.data_dir"):
        load_task("medqa")
    with pytest.raises(DataError, match="task file not found"):
        load_task("medqa", str(tmp_path))
    with pytest.raises(DataError, match="no such task file"):
        load_task("nosuchtask.jsonl")
    with pytest.raises(DataError, match="eval.limit must be at least 1"):
        load_task("medqa", str(EVAL_DIR), limit=0)


def test_open_ended_medical_o1_file():
    task = load_task(str(SHARED / "medical_o1_sample.jsonl"), limit=5)
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
