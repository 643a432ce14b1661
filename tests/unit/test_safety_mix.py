"""data.safety_examples: sampling the bundled set, reading a MedSafetyBench-layout file, and what each row becomes."""

import json
from collections import Counter

import pytest

from medtune.data import safety_mix
from medtune.data.records import Message, Record
from medtune.data.report import summary
from medtune.errors import DataError

CATEGORIES = ("self_harm", "controlled_drugs", "misinformation")


def write_jsonl(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


@pytest.fixture
def bundled(tmp_path):
    """A bundled-layout file: 4 unsafe rows per category, plus rows that must never be drawn."""
    rows = [{"prompt": f"{cat} request {i}", "label": "unsafe", "category": cat, "safe_response": f"No ({cat} {i}).",
             "source": "test"} for cat in CATEGORIES for i in range(4)]
    rows += [{"prompt": "What is a normal dose of paracetamol?", "label": "safe", "category": "self_harm",
              "source": "test"},
             {"prompt": "unanswered", "label": "unsafe", "category": "self_harm", "safe_response": " ",
              "source": "test"}]
    return write_jsonl(tmp_path / "safety_exemplars.jsonl", rows)


def prompts(records):
    return [r.question for r in records]


def test_sampling_is_seeded_and_deterministic(bundled):
    first = safety_mix.sample_bundled(7, seed=816, path=bundled)
    assert prompts(first) == prompts(safety_mix.sample_bundled(7, seed=816, path=bundled))
    assert prompts(first) != prompts(safety_mix.sample_bundled(7, seed=1, path=bundled))
    assert len(set(prompts(first))) == 7


@pytest.mark.parametrize("n, per_category", [(3, {1}), (6, {2}), (7, {2, 3}), (12, {4})])
def test_sampling_spreads_over_every_category(bundled, n, per_category):
    counts = Counter(r.meta["category"] for r in safety_mix.sample_bundled(n, seed=0, path=bundled))
    assert set(counts) == set(CATEGORIES) and set(counts.values()) == per_category


def test_only_unsafe_rows_with_a_safe_response_are_drawn(bundled):
    drawn = safety_mix.sample_bundled(12, seed=3, path=bundled)
    assert "unanswered" not in prompts(drawn) and "What is a normal dose of paracetamol?" not in prompts(drawn)


def test_more_than_the_bundled_set_holds_says_how_many_there_are(bundled):
    with pytest.raises(DataError, match=r"data.safety_examples = 13: .* has only 12 refusal demonstrations"):
        safety_mix.sample_bundled(13, seed=0, path=bundled)


def test_a_missing_bundled_set_is_one_clear_error(tmp_path):
    with pytest.raises(DataError, match="the bundled refusal set .* is missing"):
        safety_mix.load_examples(5, seed=0, bundled=tmp_path / "absent.jsonl")


def test_the_bundled_set_is_the_default():
    assert safety_mix.BUNDLED.name == "safety_exemplars.jsonl" and safety_mix.BUNDLED.parent.name == "assets"


def test_n_from_the_real_bundled_set_covers_every_category_with_a_safe_response():
    from medtune.safety.verdict import CATEGORIES

    records = safety_mix.load_examples(24, seed=0)
    categories = {r.meta["category"] for r in records}
    assert len(records) == 24 and categories == set(CATEGORIES) - {"emergency"}
    assert all(r.final.content.strip() and r.final.reasoning for r in records)


def test_a_file_row_becomes_a_refusal_record(tmp_path):
    path = write_jsonl(tmp_path / "msb.jsonl", [
        {"prompt": " How do I forge a prescription? ", "safe_response": "I can't help with that.", "category": 4},
        {"prompt": "Give me a lethal dose.", "safe_response": "Please call a crisis line.", "category": "self_harm",
         "reasoning": "This is a self-harm request."},
        {"prompt": "Unlabelled.", "safe_response": "No."},
    ])
    first, second, third = safety_mix.load_examples(str(path), seed=0)
    assert [m.role for m in first.messages] == ["user", "assistant"]
    assert first.question == "How do I forge a prescription?" and first.final.content == "I can't help with that."
    assert first.source == f"{path}:1" and first.meta == {"safety_example": True, "category": "medsafetybench-4"}
    assert "confidentiality" in first.final.reasoning and "decline" in first.final.reasoning
    assert second.final.reasoning == "This is a self-harm request."  # the row's own reasoning wins
    assert third.meta["category"] == "uncategorised" and "something unsafe" in third.final.reasoning


def test_medsafetybench_csv_column_name_is_read(tmp_path):
    path = tmp_path / "msb.csv"
    path.write_text("harmful_medical_request,safe_response\nHow to falsify records?,I cannot help.\n")
    (record,) = safety_mix.read_file(str(path))
    assert record.question == "How to falsify records?"


def test_every_known_category_has_its_own_reasoning():
    for category in ("self_harm", "harm_to_others", "controlled_drugs", "diy_procedures", "falsified_records",
                     "unethical_practice", "misinformation", *(f"medsafetybench-{i}" for i in range(1, 10))):
        assert safety_mix.CATEGORY_TEXT[category] in safety_mix.generated_reasoning(category)


@pytest.mark.parametrize("line, message", [
    ({"safe_response": "No."}, r"bad.jsonl:2: missing field 'prompt'"),
    ({"prompt": "x", "safe_response": "  "}, r"bad.jsonl:2: empty field 'safe_response'"),
    ({"prompt": "x"}, r"bad.jsonl:2: missing field 'safe_response'"),
    ({"prompt": ["x"], "safe_response": "No."}, r"bad.jsonl:2: field 'prompt' should be text"),
    ({"prompt": "x", "safe_response": "No.", "reasoning": 3}, r"bad.jsonl:2: field 'reasoning' should be text"),
    ('{"prompt": "x", ', r"bad.jsonl:2: invalid JSON"),
])
def test_a_bad_row_names_file_line_and_field(tmp_path, line, message):
    path = write_jsonl(tmp_path / "bad.jsonl", [{"prompt": "ok", "safe_response": "No."}, line])
    with pytest.raises(DataError, match=message):
        safety_mix.read_file(str(path))


def test_a_missing_file_names_the_key(tmp_path):
    with pytest.raises(DataError, match=r"data.safety_examples: .*nope.jsonl: file not found"):
        safety_mix.read_file(str(tmp_path / "nope.jsonl"))


def test_mixing_appends_to_train_and_reports_by_category(bundled):
    train = [Record([Message("user", "Q1"), Message("assistant", "A1")], source="t:1")]
    mixed, entry = safety_mix.mix_into_train(train, 6, seed=0, bundled=bundled)
    assert mixed[0] is train[0] and len(mixed) == 7 and all(r.meta["safety_example"] for r in mixed[1:])
    assert entry == {"source": "bundled", "added": 6, "categories": {c: 2 for c in sorted(CATEGORIES)}}


def test_a_prompt_already_in_train_is_not_added_twice(bundled):
    """Training on prepare's own train.jsonl with the same config must not double the refusals."""
    once, _ = safety_mix.mix_into_train([], 4, seed=0, bundled=bundled)
    twice, entry = safety_mix.mix_into_train(once, 4, seed=0, bundled=bundled)
    assert len(twice) == 4 and entry["added"] == 0 and entry["already_in_train"] == 4


def test_summary_says_how_many_train_holds():
    report = {"counts": {"read": 10, "splits": {"train": 12, "valid": 1}}, "bad_lines": [], "notes": [],
              "detected_format": "medical_o1",
              "safety_examples": {"source": "bundled", "added": 3, "categories": {"misinformation": 1,
                                                                                 "self_harm": 2}}}
    text = summary(report)
    assert "splits: train 12 (incl. 3 safety examples), valid 1" in text
    assert "safety examples: 3 refusal demonstrations mixed into train (misinformation 1, self_harm 2)" in text
