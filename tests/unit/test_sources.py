"""Loading raw rows: every file type, error messages that name file and line, the hub failing fast offline."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from fixture_data import MEDICAL_O1_SAMPLE
from medtune.data.sources import load_rows, looks_like_hub_id
from medtune.errors import DataError

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "formats"
ROWS = [{"question": "What causes scurvy?", "answer": "Vitamin C deficiency."}, {"question": "Q2", "answer": "A2"}]


def write_jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_jsonl_rows_carry_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), "", "   ", json.dumps(ROWS[1])])
    rows, bad = load_rows(path)
    assert rows == [(f"{path}:1", ROWS[0]), (f"{path}:4", ROWS[1])]
    assert bad == []


def test_malformed_json_line_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [json.dumps(ROWS[0]), '{"question": "unterminated'])
    with pytest.raises(DataError, match=r"bad\.jsonl:2: invalid JSON: "):
        load_rows(path)


def test_invalid_json_messages_read_as_sentences(tmp_path):
    # json's own messages sometimes end in "at" ("Unterminated string starting at"): never "at at column"
    path = tmp_path / "bad.jsonl"
    path.write_text('{"question": "cut\n{"a": 1}\n{"question": "unterminated')  # the last line has no newline
    with pytest.raises(DataError) as err:
        load_rows(path)
    assert str(err.value) == f"{path}:1: invalid JSON: Unterminated string starting at column 14"  # not the newline
    _, bad = load_rows(path, skip_bad=True)
    assert bad[1]["error"] == f"{path}:3: invalid JSON: Unterminated string starting at column 14"
    whole = tmp_path / "bad.json"
    whole.write_text('[\n{"a": "unterminated')
    with pytest.raises(DataError) as err:
        load_rows(whole)
    assert str(err.value) == f"{whole}:2: invalid JSON: Unterminated string starting at column 7"


def test_line_that_is_not_an_object_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), "[1, 2]"])
    with pytest.raises(DataError, match=r"d\.jsonl:2: expected a JSON object, got list"):
        load_rows(path)


def test_skip_bad_counts_bad_lines_with_their_sources(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [json.dumps(ROWS[0]), "{oops", '"text"', json.dumps(ROWS[1])])
    rows, bad = load_rows(path, skip_bad=True)
    assert [source for source, _ in rows] == [f"{path}:1", f"{path}:4"]
    assert [b["source"] for b in bad] == [f"{path}:2", f"{path}:3"]
    assert "invalid JSON" in bad[0]["error"] and "expected a JSON object" in bad[1]["error"]


def test_skip_bad_with_nothing_left_is_an_error(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ["{oops", "nope"])
    with pytest.raises(DataError, match=r"no usable records \(2 bad lines"):
        load_rows(path, skip_bad=True)


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_file(tmp_path, content):
    path = tmp_path / "empty.jsonl"
    path.write_text(content)
    with pytest.raises(DataError, match=r"empty\.jsonl: empty file \(no records\)"):
        load_rows(path)


def test_non_utf8_line_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(ROWS[0]).encode() + b"\n" + '{"question": "fièvre"}'.encode("latin-1") + b"\n")
    with pytest.raises(DataError, match=r"latin1\.jsonl:2: not UTF-8"):
        load_rows(path)
    rows, bad = load_rows(path, skip_bad=True)
    assert len(rows) == 1 and bad[0]["source"] == f"{path}:2"


@pytest.mark.parametrize("suffix", [".csv", ".json"])
def test_non_utf8_in_whole_file_formats_names_the_line(tmp_path, suffix):
    path = tmp_path / f"latin1{suffix}"
    path.write_bytes(b"question,answer\nq,a\n" + "fièvre,a\n".encode("latin-1"))
    with pytest.raises(DataError, match=rf"latin1\{suffix}:3: not UTF-8"):
        load_rows(path)


def test_utf8_bom_is_accepted(tmp_path):
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(ROWS[0]).encode() + b"\n")
    assert load_rows(path)[0] == [(f"{path}:1", ROWS[0])]


def test_json_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps(ROWS))
    assert load_rows(path) == ([(f"{path}[0]", ROWS[0]), (f"{path}[1]", ROWS[1])], [])


def test_json_object_wrapping_one_list(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"version": 1, "data": ROWS}))
    assert [row for _, row in load_rows(path)[0]] == ROWS


def test_json_object_with_two_lists_is_an_error(tmp_path):
    path = tmp_path / "d.json"
    path.write_text(json.dumps({"train": ROWS, "test": ROWS}))
    with pytest.raises(DataError, match="exactly one list"):
        load_rows(path)


def test_json_file_holding_json_lines_is_read_as_lines(tmp_path):
    path = write_jsonl(tmp_path / "d.json", [json.dumps(r) for r in ROWS])
    assert load_rows(path)[0] == [(f"{path}:1", ROWS[0]), (f"{path}:2", ROWS[1])]


def test_invalid_json_file_names_the_line(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[\n{"a": 1},\n{"a": }\n]')
    with pytest.raises(DataError, match=r"d\.json:3: invalid JSON"):
        load_rows(path)


def test_csv_rows_and_line_numbers(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('question,answer\n"What causes\nscurvy?",Vitamin C deficiency.\nQ2,A2\n', encoding="utf-8")
    rows, _ = load_rows(path)
    assert rows == [
        (f"{path}:2", {"question": "What causes\nscurvy?", "answer": "Vitamin C deficiency."}),
        (f"{path}:4", {"question": "Q2", "answer": "A2"}),
    ]


def test_csv_line_numbers_after_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "d.csv"
    path.write_bytes(b'question,answer\r\nq1,a1\r\n\r\n\r\n"multi\r\nline",a2\r\n\r\nq3,a3,extra\r\n')
    with pytest.raises(DataError, match=r"d\.csv:8: 3 fields"):
        load_rows(path)
    rows, bad = load_rows(path, skip_bad=True)
    assert [src for src, _ in rows] == [f"{path}:2", f"{path}:5"] and bad[0]["source"] == f"{path}:8"


def test_json_error_at_the_end_of_a_line_names_that_line_and_column(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ['{"q": "x"}', '{"a": 1'])
    with pytest.raises(DataError, match=r"d\.jsonl:2: invalid JSON: Expecting ',' delimiter at column 8"):
        load_rows(path)


def test_csv_row_with_too_many_fields(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("question,answer\nq,a\nq,a,extra\n")
    with pytest.raises(DataError, match=r"d\.csv:3: 3 fields, header has 2"):
        load_rows(path)


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path)
    assert load_rows(path) == ([(f"{path}[0]", ROWS[0]), (f"{path}[1]", ROWS[1])], [])


def test_damaged_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(DataError, match="not a readable parquet file"):
        load_rows(path)


def test_save_to_disk_dataset_and_datasetdict(tmp_path):
    import datasets

    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "ds"))
    assert [row for _, row in load_rows(tmp_path / "ds")[0]] == ROWS
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS[:1]), "test": datasets.Dataset.from_list(ROWS)})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert load_rows(tmp_path / "dd")[0] == [(f"{tmp_path / 'dd'}[0]", ROWS[0])]


def test_saved_datasetdict_without_train_lists_its_splits(tmp_path):
    import datasets

    dd = datasets.DatasetDict(
        {"validation": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS)}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DataError, match=r"no 'train' split \(splits: validation, test\)"):
        load_rows(tmp_path / "dd")


def test_folder_of_data_files_like_a_downloaded_snapshot(tmp_path):
    (tmp_path / "snap" / "data").mkdir(parents=True)
    write_jsonl(tmp_path / "snap" / "data" / "train.jsonl", [json.dumps(r) for r in ROWS])
    assert [row for _, row in load_rows(tmp_path / "snap")[0]] == ROWS


def test_folder_of_data_files_keeps_file_and_line_and_skip_bad(tmp_path):
    (tmp_path / "snap").mkdir()
    write_jsonl(tmp_path / "snap" / "train.jsonl", [json.dumps(ROWS[0]), "{oops", json.dumps(ROWS[1])])
    with pytest.raises(DataError, match=r"snap/train.jsonl:2: invalid JSON"):
        load_rows(tmp_path / "snap")
    rows, bad = load_rows(tmp_path / "snap", skip_bad=True)
    file = tmp_path / "snap" / "train.jsonl"
    assert [src for src, _ in rows] == [f"{file}:1", f"{file}:3"]
    assert bad[0]["source"].endswith("train.jsonl:2")


def test_folder_split_and_slice_follow_hub_split(tmp_path):
    import datasets

    (tmp_path / "snap").mkdir()
    write_jsonl(tmp_path / "snap" / "train.jsonl", [json.dumps(r) for r in ROWS])
    write_jsonl(tmp_path / "snap" / "validation.jsonl", [json.dumps(ROWS[1])])
    assert [row for _, row in load_rows(tmp_path / "snap", hub_split="validation")[0]] == [ROWS[1]]
    assert [row for _, row in load_rows(tmp_path / "snap", hub_split="train[:1]")[0]] == [ROWS[0]]
    with pytest.raises(DataError, match=r"no 'test' split among its data files \(splits: train, validation\)"):
        load_rows(tmp_path / "snap", hub_split="test")
    dd = datasets.DatasetDict({"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:1])})
    dd.save_to_disk(str(tmp_path / "dd"))
    assert [row for _, row in load_rows(tmp_path / "dd", hub_split="test")[0]] == [ROWS[0]]
    assert [row for _, row in load_rows(tmp_path / "dd", hub_split="train[50%:]")[0]] == [ROWS[1]]


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"unsupported file type \.txt"):
        load_rows(path)


@pytest.mark.parametrize("name", ["data/missing.jsonl", "./missing", "missing.parquet", "a/b/c"])
def test_missing_local_file(name):
    with pytest.raises(DataError, match=r"file not found$"):
        load_rows(name)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("FreedomIntelligence/medical-o1-reasoning-SFT", True),
        ("someone/data.v2", True),
        ("data/train.jsonl", False),
        ("someone/data.parquet", False),
        ("./data/x", False),
        ("plainname", False),
        ("a/b/c", False),
    ],
)
def test_looks_like_hub_id(text, expected):
    assert looks_like_hub_id(text) is expected


@pytest.mark.timeout(60)
def test_hub_id_fails_fast_when_the_hub_is_out_of_reach():
    start = time.monotonic()
    with pytest.raises(DataError) as info:
        load_rows("medtune-tests/no-such-dataset-8d1f", hub_config="en", hub_split="train[:5]")
    message = str(info.value)
    assert time.monotonic() - start < 20  # datasets alone retries for about 25 seconds
    assert message.startswith("medtune-tests/no-such-dataset-8d1f: file not found")
    if "cannot be reached" in message:  # the offline case (this build machine); online it is plainly not found
        assert "data.train_file" in message and "save_to_disk" in message
    else:
        assert "no dataset of that name on the hub" in message


def test_loads_25k_records_of_3kb_quickly(tmp_path):
    path = tmp_path / "big.jsonl"
    line = json.dumps({"Question": "q" * 500, "Complex_CoT": "reasoning " * 200, "Response": "r" * 500})
    path.write_text((line + "\n") * 25_000)
    start = time.monotonic()
    rows, _ = load_rows(path)
    assert len(rows) == 25_000
    assert time.monotonic() - start < 5


def test_real_medical_o1_sample():
    rows, bad = load_rows(MEDICAL_O1_SAMPLE)
    assert len(rows) == 60 and bad == []
    assert set(rows[0][1]) == {"Question", "Complex_CoT", "Response"}


def test_fixture_files_load():
    for path in sorted(FIXTURES.glob("*.jsonl")):
        rows, _ = load_rows(path)
        assert len(rows) == 2, path


def test_a_snapshot_whose_readme_declares_configs_is_read_by_them(tmp_path):
    """medical-o1-reasoning-SFT's layout: the README says which file is which config; file names do not."""
    snap = tmp_path / "snap"
    snap.mkdir()
    write_jsonl(snap / "en.jsonl", [json.dumps(ROWS[0])])
    write_jsonl(snap / "zh.jsonl", [json.dumps(ROWS[1])])
    (snap / "README.md").write_text("---\nconfigs:\n- config_name: en\n  data_files: en.jsonl\n"
                                    "- config_name: zh\n  data_files: zh.jsonl\n---\n# a dataset\n")
    with pytest.raises(DataError, match=r"declares several configs \(en, zh\): pick one with data.hub_config"):
        load_rows(snap)  # the two were read as one mixed training set
    assert [row for _, row in load_rows(snap, hub_config="zh")[0]] == [ROWS[1]]


def test_a_compressed_file_in_a_folder_is_read_by_datasets(tmp_path):
    import gzip

    (tmp_path / "snap").mkdir()
    with gzip.open(tmp_path / "snap" / "train.jsonl.gz", "wt") as f:
        f.write("".join(json.dumps(r) + "\n" for r in ROWS))
    assert [row for _, row in load_rows(tmp_path / "snap")[0]] == ROWS


@pytest.mark.parametrize("readme", ["# just prose\n", "---\nlicense: mit\n---\n# a card\n", "---\n: [broken\n---\n"])
def test_a_readme_without_configs_leaves_the_folder_to_its_file_names(tmp_path, readme):
    (tmp_path / "snap").mkdir()
    write_jsonl(tmp_path / "snap" / "train.jsonl", [json.dumps(r) for r in ROWS])
    (tmp_path / "snap" / "README.md").write_text(readme)
    rows = load_rows(tmp_path / "snap")[0]
    assert [row for _, row in rows] == ROWS and rows[0][0].endswith("train.jsonl:1")  # medtune's reader: file:line
