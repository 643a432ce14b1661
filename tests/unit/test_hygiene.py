"""Dedup after normalising, and leakage of evaluation questions into training data."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fixture_data import EVAL_DIR
from medtune.data.hygiene import dedup, leakage, load_eval_questions, normalize, split_overlap
from medtune.data.records import Message, Record
from medtune.errors import DataError


def qa(question: str, answer: str = "A.", reasoning: str | None = "R.", source: str = "") -> Record:
    return Record([Message("user", question), Message("assistant", answer, reasoning)], source=source)


def test_normalize_folds_white_space_and_case():
    assert normalize("  What  causes\n\tScurvy? ") == "what causes scurvy?"
    assert normalize("STRASSE") == normalize("straße")


def test_dedup_removes_normalised_duplicates_and_keeps_the_first():
    records = [
        qa("What causes scurvy?", source="f:1"),
        qa("what  causes SCURVY?", source="f:2"),
        qa("What causes scurvy?", reasoning="Other reasoning.", source="f:3"),
        qa("What causes scurvy?", answer="Another answer.", source="f:4"),
        qa(" What causes scurvy? ", source="f:5"),
    ]
    kept, n_removed, removed = dedup(records)
    assert [r.source for r in kept] == ["f:1", "f:3", "f:4"]
    assert n_removed == 2 and removed == ["f:2", "f:5"]


def test_dedup_of_text_records():
    records = [Record([], "t:1", {"text": "Hello  World"}), Record([], "t:2", {"text": "hello world"})]
    assert dedup(records)[1:] == (1, ["t:2"])


def test_dedup_with_no_duplicates():
    records = [qa("Q1", source="a"), qa("Q2", source="b")]
    assert dedup(records) == (records, 0, [])


def _eval_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_leakage_on_a_small_file(tmp_path):
    options = {"A": "x", "B": "y"}
    path = _eval_file(tmp_path / "mcq.jsonl", [{"id": "m-1", "question": "What causes scurvy?", "options": options}])
    report = leakage([qa("WHAT causes  scurvy?", source="t:3"), qa("Unrelated", source="t:4")], [path])
    assert report["matches"] == [{"source": "t:3", "eval_file": str(path), "eval_id": "m-1"}]
    assert report["per_file"] == {str(path): 1} and report["leaked_records"] == 1


def test_a_held_out_file_in_the_medical_o1_layout_checks_leakage(tmp_path):
    path = _eval_file(tmp_path / "heldout.jsonl", [{"Question": "What causes scurvy?", "Response": "No vitamin C."}])
    assert leakage([qa("what causes  scurvy?")], [path])["leaked_records"] == 1


def test_eval_file_without_question_names_the_line(tmp_path):
    path = _eval_file(tmp_path / "mcq.jsonl", [{"id": "m-1", "question": "Q"}, {"id": "m-2", "prompt": "Q"}])
    with pytest.raises(DataError, match=r"mcq\.jsonl:2: missing or empty field 'question'"):
        load_eval_questions([path])


def test_missing_eval_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        leakage([qa("Q")], [tmp_path / "nope.jsonl"])


def test_leakage_against_the_real_eval_files():
    files = sorted(EVAL_DIR.glob("*.jsonl"))
    medqa = EVAL_DIR / "medqa.jsonl"
    line = json.loads(medqa.read_text(encoding="utf-8").splitlines()[5])
    leaked = qa("  " + line["question"].upper().replace(" ", "   ") + "\n", source="train.jsonl:9")
    clean = qa("A made-up question that no benchmark asks, about zebra-striped kidneys?", source="train.jsonl:10")
    report = leakage([clean, leaked], files)
    assert report["matches"] == [{"source": "train.jsonl:9", "eval_file": str(medqa), "eval_id": line["id"]}]
    assert report["per_file"][str(medqa)] == 1
    assert sum(report["per_file"].values()) == 1 and report["leaked_records"] == 1


def test_loading_all_eval_questions_is_fast(tmp_path):
    # as many questions as the four full benchmark files hold (7,045), the bundled rows repeated with a counter
    rows = [json.loads(line) for f in sorted(EVAL_DIR.glob("*.jsonl")) for line in f.read_text().splitlines()]
    big = tmp_path / "eval.jsonl"
    big.write_text("".join(json.dumps({**rows[i % len(rows)], "id": f"q{i}",
                                       "question": f"{i} {rows[i % len(rows)]['question']}"}) + "\n"
                           for i in range(7045)))
    start = time.monotonic()
    index = load_eval_questions([big])
    assert sum(len(v) for v in index.values()) == 7045
    assert time.monotonic() - start < 3


def test_split_overlap_names_valid_and_test_questions_also_in_train():
    splits = {"train": [qa("What causes scurvy?", source="t:1"), qa("Q2", source="t:2")],
              "valid": [qa("what  causes SCURVY?", "Other.", source="v:1"), qa("New", source="v:2")],
              "test": [qa("Q3", source="s:1")]}
    found = split_overlap(splits)
    assert found["valid"] == {"records": 1, "matches": [{"source": "v:1", "train_source": "t:1"}]}
    assert found["test"] == {"records": 0, "matches": []}
