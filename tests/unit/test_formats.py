"""Layout detection and conversion into records.Record, with <think> splitting and precise errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fixture_data import MEDICAL_O1_SAMPLE
from medtune.data.formats import FORMATS, convert, detect_dataset_format, detect_format, to_record
from medtune.data.records import Message, Record
from medtune.data.sources import load_rows
from medtune.errors import DataError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "formats"
SRC = "d.jsonl:7"


def user(text: str) -> Message:
    return Message("user", text)


def bot(text: str, reasoning: str | None = None) -> Message:
    return Message("assistant", text, reasoning)


# ---------------------------------------------------------------- every layout, from its fixture file

EXPECTED = {
    "alpaca": [
        [
            user("What is the first-line treatment for uncomplicated hypertension?"),
            bot(
                "A thiazide diuretic, ACE inhibitor, ARB or calcium channel blocker.",
                "Guidelines list thiazides, ACE inhibitors, ARBs and calcium channel blockers.",
            ),
        ],
        [
            user("Name the deficient vitamin.\n\nBleeding gums and perifollicular haemorrhages."),
            bot("Vitamin C (scurvy)."),
        ],
    ],
    "instruction_response": [
        [
            user("Which nerve is damaged in wrist drop?"),
            bot("The radial nerve.", "Wrist extensors are supplied by the radial nerve."),
        ],
        [user("What does HbA1c measure?"), bot("Average blood glucose over about three months.")],
    ],
    "chat": [
        [
            Message("system", "You are a careful medical assistant."),
            user("What causes scurvy?"),
            bot("A lack of vitamin C.", "Scurvy is a deficiency disease."),
        ],
        [
            user("Is aspirin an NSAID?"),
            bot("Yes.", "Aspirin inhibits COX enzymes."),
            user("Does it thin the blood?"),
            bot("It inhibits platelet aggregation."),
        ],
    ],
    "sharegpt": [
        [
            Message("system", "Answer briefly."),
            user("What is the normal adult resting heart rate?"),
            bot("60 to 100 beats per minute.", "Normal sinus rhythm range."),
        ],
        [
            Message("system", "Be careful."),
            user("What is a normal body temperature?"),
            bot("About 37 degrees Celsius."),
        ],
    ],
    "prompt_completion": [
        [user("Which organ produces insulin?"), bot("The pancreas.", "Beta cells in the islets of Langerhans.")],
        [user("What is the antidote for paracetamol overdose?"), bot("N-acetylcysteine.")],
    ],
}


@pytest.mark.parametrize("fmt", sorted(EXPECTED))
def test_fixture_layout_detected_and_converted_exactly(fmt):
    path = FIXTURES / f"{fmt}.jsonl"
    rows, _ = load_rows(path)
    assert detect_dataset_format(rows) == fmt
    records = convert(rows)
    assert [r.messages for r in records] == EXPECTED[fmt]
    assert [r.source for r in records] == [f"{path}:1", f"{path}:2"]


def test_text_layout_keeps_the_whole_text_in_meta():
    rows, _ = load_rows(FIXTURES / "text.jsonl")
    assert detect_dataset_format(rows) == "text"
    record = convert(rows)[0]
    assert record.messages == []
    assert record.meta == {"text": "Hypertension is persistently raised arterial blood pressure."}


def test_medical_o1_fixture_cut_from_real_data():
    path = FIXTURES / "medical_o1.jsonl"
    rows, _ = load_rows(path)
    assert detect_dataset_format(rows) == "medical_o1"
    record = convert(rows)[0]
    raw = rows[0][1]
    assert record.messages == [user(raw["Question"].strip()), bot(raw["Response"].strip(), raw["Complex_CoT"].strip())]


def test_medical_o1_keys_match_case_insensitively():
    row = {"question": " Q ", "complex_cot": "R", "RESPONSE": "A"}
    assert detect_format(row) == "medical_o1"
    assert to_record(row, "medical_o1", SRC) == Record([user("Q"), bot("A", "R")], source=SRC)


# ---------------------------------------------------------------- <think> splitting and layout details


def test_alpaca_output_with_think_is_split_and_history_kept():
    row = {
        "instruction": "And the dose?",
        "output": "<think>\nAdult dosing.\n</think>\n\n500 mg.",
        "history": [["Which drug for strep throat?", "Penicillin V."]],
        "system": "Be brief.",
    }
    assert to_record(row, "alpaca", SRC).messages == [
        Message("system", "Be brief."),
        user("Which drug for strep throat?"),
        bot("Penicillin V."),
        user("And the dose?"),
        bot("500 mg.", "Adult dosing."),
    ]


def test_alpaca_with_empty_instruction_uses_input():
    row = {"instruction": "", "input": "What is a normal potassium level?", "output": "3.5 to 5.0 mmol/L."}
    assert to_record(row, "alpaca", SRC).question == "What is a normal potassium level?"


def test_instruction_response_keeps_its_input_with_the_question():
    row = {"instruction": "Explain the finding.", "input": "Patient aged 19, HbA1c 9%.", "response": "Poor control."}
    assert to_record(row, "instruction_response", SRC).question == "Explain the finding.\n\nPatient aged 19, HbA1c 9%."
    row = {"question": "Which drug?", "context": "Atrial fibrillation, CHA2DS2-VASc 3.", "answer": "Apixaban."}
    assert to_record(row, "instruction_response", SRC).question == "Which drug?\n\nAtrial fibrillation, CHA2DS2-VASc 3."


def test_chat_content_parts_and_thinking_field():
    row = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "Define"}, {"type": "text", "text": "tachycardia."}]},
            {"role": "assistant", "content": "A heart rate above 100/min.", "thinking": "Adult threshold."},
        ]
    }
    assert to_record(row, "chat", SRC).messages == [
        user("Define\ntachycardia."),
        bot("A heart rate above 100/min.", "Adult threshold."),
    ]


def test_prompt_completion_conversational_lists():
    row = {
        "prompt": [{"role": "user", "content": "What is BMI?"}],
        "completion": [
            {"role": "assistant", "content": "<think>Formula.</think>Weight in kg over height in m squared."}
        ],
    }
    assert detect_format(row) == "prompt_completion"
    assert to_record(row, "prompt_completion", SRC).messages == [
        user("What is BMI?"),
        bot("Weight in kg over height in m squared.", "Formula."),
    ]


def test_explicit_format_and_plain_dict_rows():
    records = convert([{"prompt": "Q", "completion": "A"}], fmt="prompt_completion")
    assert records == [Record([user("Q"), bot("A")], source="row[0]")]


def test_auto_detection_follows_the_majority_of_the_first_rows():
    rows = [("f:1", {"foo": 1})] + [(f"f:{i}", {"prompt": "Q", "completion": "A"}) for i in range(2, 6)]
    assert detect_dataset_format(rows) == "prompt_completion"


# ---------------------------------------------------------------- columns mapping


def test_columns_map_every_role():
    row = {"Frage": "Q", "Denken": "R", "Antwort": "A", "Rolle": "Be careful."}
    columns = {"question": "Frage", "reasoning": "Denken", "answer": "Antwort", "system": "Rolle"}
    assert convert([("f:1", row)], columns=columns) == [
        Record([Message("system", "Be careful."), user("Q"), bot("A", "R")], source="f:1")
    ]


def test_partial_columns_find_the_rest_by_usual_names():
    row = {"case": "Q", "response": "<think>R</think>A"}
    assert to_record(row, "auto", SRC, columns={"question": "case"}).messages == [user("Q"), bot("A", "R")]


def test_mapped_reasoning_column_is_required():
    with pytest.raises(DataError, match=r"^d\.jsonl:7: missing field 'why' \(format mapped\)$"):
        to_record({"q": "Q", "a": "A"}, "auto", SRC, columns={"question": "q", "answer": "a", "reasoning": "why"})


def test_unknown_column_role():
    with pytest.raises(DataError, match=r"unknown role\(s\) \['quesiton'\]"):
        to_record({"q": "Q", "answer": "A"}, "auto", SRC, columns={"quesiton": "q"})


# ---------------------------------------------------------------- errors name field, source and format


@pytest.mark.parametrize(
    "row, fmt, message",
    [
        ({"Question": "Q", "Response": "A"}, "medical_o1", "missing field 'Complex_CoT'"),
        ({"Question": "Q", "Complex_CoT": "  ", "Response": "A"}, "medical_o1", "empty field 'Complex_CoT'"),
        ({"Question": "", "Complex_CoT": "R", "Response": "A"}, "medical_o1", "empty field 'Question'"),
        ({"instruction": "Q", "output": ""}, "alpaca", "empty field 'output'"),
        ({"instruction": "Q", "output": "<think>R</think>"}, "alpaca", "empty field 'output' (nothing after </think>)"),
        ({"instruction": "Q", "input": ""}, "alpaca", "missing field 'output'"),
        ({"question": "Q", "answer": None}, "instruction_response", "empty field 'answer'"),
        ({"question": "Q"}, "instruction_response", "missing field (one of 'response', 'answer', 'output')"),
        ({"prompt": "Q", "completion": ""}, "prompt_completion", "empty field 'completion'"),
        ({"text": ""}, "text", "empty field 'text'"),
        ({"messages": []}, "chat", "field 'messages' should be a non-empty list of turns"),
        ({"messages": [{"role": "user", "content": "Q"}]}, "chat", "field 'messages' has no assistant turn"),
        (
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": ""}]},
            "chat",
            "empty field 'messages[1].content'",
        ),
        ({"messages": [{"role": "tool", "content": "Q"}]}, "chat", "field 'messages[0].role' = 'tool'"),
        ({"conversations": [{"from": "human", "value": "Q"}]}, "sharegpt", "field 'conversations' has no assistant"),
        ({"question": "Q", "answer": ["A"]}, "instruction_response", "field 'answer' should be text"),
        ({"Question": "Q", "Complex_CoT": "R", "Response": 123}, "medical_o1",
         "field 'Response' = 123 is a number, not text: write it as a string (\"123\") to train on it as text"),
        ({"question": 2.5, "answer": "A"}, "instruction_response", "field 'question' = 2.5 is a number, not text"),
        ({"instruction": "Q", "output": "<think>R and then A"}, "alpaca", "'output' holds a <think> never closed"),
        ({"instruction": "Q", "output": "A</think>"}, "alpaca", "'output' holds a stray think tag"),
        ({"instruction": "Q", "output": "<think>R</think>A<think>S</think>B"}, "alpaca", "a stray think tag"),
        ({"Question": "Q", "Complex_CoT": "R", "Response": "<think>R</think>A"}, "medical_o1",
         "field 'Response' holds a <think> block while a separate reasoning field gives the reasoning"),
        ({"Question": "Q", "Complex_CoT": "<think>R</think>", "Response": "A"}, "medical_o1",
         "the reasoning field holds a <think> or </think> tag"),
    ],
)
def test_bad_records_name_field_source_and_format(row, fmt, message):
    with pytest.raises(DataError) as info:
        to_record(row, fmt, SRC)
    text = str(info.value)
    assert text.startswith(f"{SRC}: ") and message in text and text.endswith(f"(format {fmt})")


def test_conversion_error_points_at_the_file_line(tmp_path):
    path = tmp_path / "d.jsonl"
    rows = [{"Question": "Q", "Complex_CoT": "R", "Response": "A"}, {"Question": "Q", "Complex_CoT": "R"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    with pytest.raises(DataError, match=r"d\.jsonl:2: missing field 'Response' \(format medical_o1\)"):
        convert(load_rows(path)[0])


def test_unknown_layout_lists_keys_seen_and_layouts_known():
    with pytest.raises(DataError) as info:
        detect_dataset_format([("f.jsonl:1", {"foo": "x", "bar": "y"}), ("f.jsonl:2", {"baz": "z"})])
    text = str(info.value)
    assert "['bar', 'baz', 'foo']" in text and all(name in text for name in FORMATS) and "data.columns" in text


def test_unknown_format_name():
    with pytest.raises(DataError, match="unknown format 'csv'"):
        to_record({"a": 1}, "csv", SRC)


# ---------------------------------------------------------------- the real sample


def test_real_medical_o1_sample_converts():
    rows, _ = load_rows(MEDICAL_O1_SAMPLE)
    assert detect_dataset_format(rows) == "medical_o1"
    records = convert(rows)
    assert len(records) == 60
    assert all(r.final.reasoning and r.final.content and r.question for r in records)
    assert records[0].source.endswith("medical_o1_sample.jsonl:1")


# ---------------------------------------------------------------- verifiable problems (the GRPO stage's data)


def test_exam_mcq_rows_are_detected_before_instruction_response_and_keep_their_options():
    from fixture_data import RL_MCQ
    from medtune.data.verifiable import MCQ_INSTRUCTION, Reference

    rows, _ = load_rows(RL_MCQ)
    assert detect_dataset_format(rows) == "mcq"
    record = convert(rows)[0]
    user_turn = record.messages[0].content
    assert user_turn.startswith(MCQ_INSTRUCTION) and "\nA. rheumatic fever\nB. TB\n" in user_turn
    assert record.meta["verifiable"] == Reference("rheumatic fever", "A", {"A": "rheumatic fever", "B": "TB",
                                                                           "C": "unknown cause",
                                                                           "D": "previous acute pericarditis"})
    assert record.question == rows[0][1]["question"]  # dedup and leakage read the question, not the instruction
    assert record.final.content == "The answer is A. rheumatic fever"


def test_open_verifiable_rows_keep_the_reference():
    from fixture_data import RL_OPEN

    rows, _ = load_rows(RL_OPEN)
    assert detect_dataset_format(rows) == "verifiable"
    record = convert(rows)[1]
    assert record.messages[0].content.startswith("Identify a drug that cannot be used")
    assert record.meta["verifiable"].answer == "Cefaclor." and record.meta["verifiable"].letter is None


def test_the_eval_prompt_and_the_rl_prompt_of_an_mcq_are_one_text():
    from medtune.evaluation.tasks import MCQExample, MCQTask

    row = {"question": "Which vitamin prevents scurvy?", "options": {"A": "A", "B": "C"}, "answer": "B"}
    record = to_record(row, "auto", SRC)
    ex = MCQExample("q", row["question"], row["options"], "B", SRC)
    assert MCQTask("t", [ex], "here").messages(ex)[0].content == record.messages[0].content


@pytest.mark.parametrize("row, message", [
    ({"question": "Q?", "options": {"A": "x", "B": "y"}, "answer": "E"},
     "'answer' = 'E' is not one of the options' letters \\(A, B\\) nor"),
    ({"question": "Q?", "options": {"A": "x", "B": ""}, "answer": "A"}, "field 'options.B' should be non-empty"),
    ({"question": "Q?", "options": {"A": "x"}, "answer": "A"}, "at least two"),
    ({"Open-ended Verifiable Question": "Q?", "Ground-True Answer": ""}, "empty field 'Ground-True Answer'"),
])
def test_verifiable_rows_with_bad_fields_are_named(row, message):
    with pytest.raises(DataError, match=message) as error:
        to_record(row, "auto", SRC)
    assert SRC in str(error.value)


def test_options_as_a_list_are_lettered_and_an_answer_text_names_its_letter():
    row = {"question": "Q?", "options": ["iron", "vitamin C"], "answer": "Vitamin C"}
    assert detect_format(row) == "mcq"  # never an instruction/response row that would drop the options
    ref = to_record(row, "auto", SRC).meta["verifiable"]
    assert ref.options == {"A": "iron", "B": "vitamin C"} and ref.letter == "B" and ref.answer == "vitamin C"


def test_prepared_verifiable_rows_read_back_with_their_reference():
    from medtune import config as config_mod
    from medtune.data.outputs import output_row

    row = {"question": "Which vitamin prevents scurvy?", "options": {"A": "A", "B": "C"}, "answer": "B"}
    record = to_record(row, "auto", SRC)
    written = output_row(record, config_mod.load(None))
    assert written["reference"] == "C" and written["answer_letter"] == "B"
    again = to_record(json.loads(json.dumps(written)), "auto", "prepared/train.jsonl:1")
    assert again.meta["verifiable"] == record.meta["verifiable"] and again.messages == record.messages
