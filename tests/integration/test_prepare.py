"""`medtune prepare` end to end on the real medical-o1 sample, through the command line."""

import json

import pytest

from fixture_data import EVAL_DIR
from fixture_data import MEDICAL_O1_SAMPLE as SAMPLE
from medtune.cli import main


@pytest.fixture(scope="module")
def model_dir(tiny_llama):
    return tiny_llama


def read_jsonl(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(*argv):
    return main(["prepare", *map(str, argv)])


def test_prepare_real_sample(tmp_path, model_dir, capsys):
    out = tmp_path / "data"
    assert run("--data", SAMPLE, "--model", model_dir, "--max-length", 1024, "--split", "0.7,0.2,0.1",
               "--leakage", EVAL_DIR / "medqa.jsonl", "--out", out) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["detected_format"] == "medical_o1"
    assert report["counts"]["read"] == 60
    assert report["counts"]["splits"] == {"train": 42, "valid": 12, "test": 6}
    assert report["leakage"]["leaked_records"] == 0
    audit = report["length"]["train"]
    assert audit["examples"] == 42 and audit["tokens"]["max"] >= audit["tokens"]["p99"] >= audit["tokens"]["p50"]
    dropped = len(report["dropped"]["train"]["overlong"])
    assert dropped == audit["exceed_max_length"]  # default policy drop: every overlong one, and it is reported
    train = read_jsonl(out / "train.jsonl")
    assert len(train) == 42 - dropped == report["counts"]["kept"]["train"]
    assert len(read_jsonl(out / "test.jsonl")) == 6  # test is never cut by the length policy
    roles = [m["role"] for m in train[0]["messages"]]
    assert roles == ["user", "assistant"]
    assert train[0]["messages"][1]["content"].startswith("<think>")
    printed = capsys.readouterr().out
    assert "format medical_o1: read 60 records" in printed and "over max_length 1024" in printed
    assert "test 6 kept whole" in printed


def test_same_seed_same_split(tmp_path):
    for name in ("a", "b"):
        assert run("--data", SAMPLE, "--seed", 7, "--out", tmp_path / name) == 0
    assert (tmp_path / "a" / "valid.jsonl").read_text() == (tmp_path / "b" / "valid.jsonl").read_text()
    assert run("--data", SAMPLE, "--seed", 8, "--out", tmp_path / "c") == 0
    assert (tmp_path / "a" / "valid.jsonl").read_text() != (tmp_path / "c" / "valid.jsonl").read_text()


@pytest.mark.parametrize("fmt, key", [("chat", "messages"), ("text", "text"), ("completions", "completion")])
def test_output_formats_read_by_mlx_lm(tmp_path, model_dir, fmt, key):
    from transformers import AutoTokenizer

    datasets = pytest.importorskip("mlx_lm.tuner.datasets")
    out = tmp_path / fmt
    assert run("--data", SAMPLE, "--limit", 20, "--model", model_dir, "--max-length", 4096,
               "--output-format", fmt, "--out", out) == 0
    rows = read_jsonl(out / "train.jsonl")
    assert key in rows[0]
    tok = AutoTokenizer.from_pretrained(model_dir)
    train, valid, _ = datasets.load_local_dataset(out, tok, type("C", (), {"mask_prompt": fmt != "text"})())
    tokens, offset = train.process(train[0])
    assert len(tokens) > offset >= 0 and len(valid) >= 1
    # medtune reads its own output back: same records, same format family
    assert run("--data", out / "train.jsonl", "--out", tmp_path / "again") == 0
    report = json.loads((tmp_path / "again" / "prepare_report.json").read_text())
    assert report["counts"]["read"] == len(rows)


def test_system_prompt_and_drop_reasoning(tmp_path):
    out = tmp_path / "d"
    assert run("--data", SAMPLE, "--limit", 10, "data.system_prompt=Be careful.", "data.reasoning=drop",
               "--out", out) == 0
    row = read_jsonl(out / "train.jsonl")[0]
    assert row["messages"][0] == {"role": "system", "content": "Be careful."}
    assert "<think>" not in row["messages"][-1]["content"]


def test_duplicates_removed_and_counted(tmp_path):
    lines = SAMPLE.read_text().splitlines()[:10]
    dup = json.loads(lines[0])
    dup["Question"] = "  " + dup["Question"].upper() + "  "  # same after folding case and white space
    data = tmp_path / "dups.jsonl"
    data.write_text("\n".join(lines + [json.dumps(dup), lines[1]]) + "\n")
    assert run("--data", data, "--out", tmp_path / "o") == 0
    report = json.loads((tmp_path / "o" / "prepare_report.json").read_text())
    assert report["counts"]["duplicates_removed"] == 2
    assert sum(report["counts"]["splits"].values()) == 10


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ('{"Question": "q", "Complex_CoT": "c", "Response": "r"}\n{bad json\n', [], r"bad\.jsonl:2: invalid JSON"),
        ("", [], r"bad\.jsonl: empty file"),
        ('{"Question": "q", "Complex_CoT": "c", "Response": ""}\n', [], r"Response"),
        ('{"Question": "q", "Complex_CoT": "c", "Response": "r"}\n', ["--split", "0.5,0.4"], r"sum"),
    ],
)
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, capsys, content, extra, message):
    import re

    data = tmp_path / "bad.jsonl"
    data.write_text(content)
    out = tmp_path / "out"
    assert run("--data", data, "--out", out, *extra) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.search(message, err), err
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("out_name", ["taken", "taken/sub"])
def test_output_folder_that_is_a_file_is_one_line_exit_2(tmp_path, capsys, out_name):
    (tmp_path / "taken").write_text("not a folder")
    assert run("--data", SAMPLE, "--limit", 10, "--out", tmp_path / out_name) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith(f"{tmp_path / 'taken'} exists and is not a folder") and len(err.splitlines()) == 1
    assert (tmp_path / "taken").read_text() == "not a folder"


def test_skip_bad_counts_lines(tmp_path):
    data = tmp_path / "bad.jsonl"
    good = SAMPLE.read_text().splitlines()[:4]
    data.write_text("\n".join(good[:2] + ["{oops"] + good[2:]) + "\n")
    assert run("--data", data, "--skip-bad", "--out", tmp_path / "o") == 0
    report = json.loads((tmp_path / "o" / "prepare_report.json").read_text())
    assert [b["source"] for b in report["bad_lines"]] == [f"{data}:3"]
    assert report["counts"]["read"] == 5


@pytest.mark.parametrize("arch", ["llama", "mistral", "phi3", "qwen2"])
@pytest.mark.parametrize("template", ["auto", "phi-think", "r1-cot", "alpaca"])
def test_every_architecture_and_template_masks_only_the_answer(tiny_models, arch, template):
    from transformers import AutoTokenizer

    from medtune import config
    from medtune.data.pipeline import prepare

    tok = AutoTokenizer.from_pretrained(tiny_models(arch))
    cfg = config.load(None, values={"data.train_file": str(SAMPLE), "data.limit": 6, "data.template": template,
                                    "model.max_length": 100_000, "data.system_prompt": "Be careful."})
    prepared = prepare(cfg, tok)
    for record, enc in zip(prepared.splits["train"], prepared.encoded["train"]):
        trained = tok.decode([t for t, m in zip(enc.input_ids, enc.mask) if m])
        untrained = tok.decode([t for t, m in zip(enc.input_ids, enc.mask) if not m])
        final = record.final
        assert trained.startswith("<think>") and final.reasoning[:40] in trained and final.content[-40:] in trained
        assert record.question[:40] not in trained and "Be careful." not in trained
        assert record.question[:40] in untrained and final.content[-40:] not in untrained
        assert trained.endswith(tok.eos_token)


def test_plain_text_records_stay_text_in_every_output_format(tmp_path):
    data = tmp_path / "corpus.jsonl"
    data.write_text("".join(json.dumps({"text": f"Note {i}: aspirin inhibits COX-1."}) + "\n" for i in range(10)))
    for fmt in ("chat", "completions"):
        out = tmp_path / fmt
        assert run("--data", data, "--output-format", fmt, "--split", "0.8,0.2", "--out", out) == 0
        rows = read_jsonl(out / "train.jsonl") + read_jsonl(out / "valid.jsonl")
        assert sorted(r["text"] for r in rows) == sorted(f"Note {i}: aspirin inhibits COX-1." for i in range(10))


def test_a_rerun_leaves_no_split_file_of_the_earlier_run(tmp_path):
    out = tmp_path / "o"
    assert run("--data", SAMPLE, "--split", "0.7,0.2,0.1", "--out", out) == 0
    assert (out / "test.jsonl").is_file()
    assert run("--data", SAMPLE, "--split", "0.8,0.2", "--seed", 7, "--out", out) == 0
    assert not (out / "test.jsonl").exists()  # its questions may now be in train.jsonl


def test_an_empty_split_is_not_written_and_a_users_own_split_files_are_never_mixed_with_new_ones(tmp_path, capsys):
    own = tmp_path / "mine"
    own.mkdir()
    (own / "test.jsonl").write_text("my own test set\n")
    (own / "train.jsonl").write_text("my own training set\n")
    assert run("--data", SAMPLE, "--split", "0.9,0.1,0", "--out", own) == 2
    assert capsys.readouterr().err.strip().endswith(
        f"output folder {own} holds test.jsonl, train.jsonl that no medtune prepare wrote (no prepare_report.json): "
        "writing new splits beside them would mix the two sets; choose another --out")
    assert sorted(p.name for p in own.iterdir()) == ["test.jsonl", "train.jsonl"]  # nothing written, nothing lost
    assert (own / "test.jsonl").read_text() == "my own test set\n"
    assert run("--data", SAMPLE, "--split", "0.9,0.1,0", "--out", tmp_path / "fresh") == 0
    assert not (tmp_path / "fresh" / "test.jsonl").exists()


def test_writing_over_the_input_file_is_refused(tmp_path, capsys):
    out = tmp_path / "o"
    assert run("--data", SAMPLE, "--limit", 20, "--out", out) == 0
    before = (out / "train.jsonl").read_text()
    assert run("--data", out / "train.jsonl", "--out", out) == 2
    assert "would overwrite the input data.train_file" in capsys.readouterr().err
    assert (out / "train.jsonl").read_text() == before


def test_completions_rows_keep_the_system_prompt_for_medtune(tmp_path):
    out = tmp_path / "c"
    assert run("--data", SAMPLE, "--limit", 10, "--output-format", "completions", "data.system_prompt=Be careful.",
               "--out", out) == 0
    row = read_jsonl(out / "train.jsonl")[0]
    assert row["system"] == "Be careful." and row["completion"].startswith("<think>")
    report = json.loads((out / "prepare_report.json").read_text())
    assert any("mlx-lm ignores" in n for n in report["notes"])
    from medtune import config
    from medtune.data.pipeline import prepare

    again = prepare(config.load(None, values={"data.train_file": str(out / "train.jsonl")}))
    assert again.splits["train"][0].system == "Be careful."


def test_skip_bad_also_skips_records_with_an_empty_field(tmp_path):
    data = tmp_path / "holes.jsonl"
    good = SAMPLE.read_text().splitlines()[:6]
    hole = json.dumps({"Question": "q?", "Complex_CoT": "c", "Response": ""})
    data.write_text("\n".join(good[:3] + [hole] + good[3:]) + "\n")
    assert run("--data", data, "--skip-bad", "--out", tmp_path / "o") == 0
    report = json.loads((tmp_path / "o" / "prepare_report.json").read_text())
    assert [b["source"] for b in report["bad_lines"]] == [f"{data}:4"]
    assert "Response" in report["bad_lines"][0]["error"]
    assert report["counts"]["read"] == 7 and sum(report["counts"]["splits"].values()) == 6


def test_truncate_lists_what_it_cuts(tmp_path, model_dir, capsys):
    out = tmp_path / "t"
    assert run("--data", SAMPLE, "--limit", 40, "--model", model_dir, "--max-length", 1024,
               "data.overlong=truncate", "--out", out) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    assert len(report["truncated"]["train"]) == report["length"]["train"]["exceed_max_length"] > 0
    assert report["dropped"]["train"]["overlong"] == []
    assert "truncated to max_length: train" in capsys.readouterr().out


def test_a_limit_is_shown_and_an_empty_train_split_exits_2(tmp_path, model_dir, capsys):
    assert run("--data", SAMPLE, "--limit", 5, "--split", "1,0", "--out", tmp_path / "five") == 0
    assert "read 60 records, 0 bad lines, 0 duplicates removed, first 5 kept (data.limit)" in capsys.readouterr().out
    out = tmp_path / "short"
    assert run("--data", SAMPLE, "--limit", 5, "--model", model_dir, "--max-length", 20, "--out", out) == 2
    printed = capsys.readouterr()
    assert "kept after length policy: train 0" in printed.out  # the audit is shown, then why it failed
    assert "holds no training example after the length policy" in printed.err and "model.max_length=" in printed.err
    assert (out / "prepare_report.json").is_file()


def test_overrides_may_come_before_between_and_after_flags(tmp_path, capsys):
    out = tmp_path / "mixed"
    assert run("--data", SAMPLE, "data.limit=7", "--split", "1,0", "--out", out, "seed=3", "data.dedup=false") == 0
    assert "first 7 kept (data.limit)" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # an unknown flag is still argparse's error, wherever it sits
        main(["prepare", "--data", str(SAMPLE), "--out", str(tmp_path / "x"), "--no-such-flag"])
    assert "unrecognized arguments: --no-such-flag" in capsys.readouterr().err


def test_a_saved_datasetdict_keeps_its_validation_and_test_splits(tmp_path, capsys):
    import datasets

    rows = read_jsonl(SAMPLE)[:12]
    parts = {"train": rows[:8], "validation": rows[8:10] + rows[:1], "test": rows[10:]}
    saved = datasets.DatasetDict({n: datasets.Dataset.from_list(r) for n, r in parts.items()})
    saved.save_to_disk(str(tmp_path / "dd"))
    assert run("--data", tmp_path / "dd", "--out", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["counts"]["splits"] == {"train": 8, "valid": 3, "test": 2}  # train not cut again
    assert report["counts"]["read"] == 8 and report["counts"]["read_apart"] == {"valid": 3, "test": 2}
    assert report["overlap"]["valid"]["records"] == 1  # the training record put in validation is named
    printed = capsys.readouterr().out
    assert "valid 3 (read apart)" in printed and "questions also in train: valid 1" in printed
    assert "its validation split is valid" in printed


def test_a_valid_file_sharing_questions_with_train_is_flagged(tmp_path, capsys):
    rows = read_jsonl(SAMPLE)[:6]
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:5]))
    (tmp_path / "v.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[4:]))
    assert run("--data", tmp_path / "t.jsonl", "data.valid_file=" + str(tmp_path / "v.jsonl"),
               "--out", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["overlap"]["valid"]["matches"] == [{"source": f"{tmp_path / 'v.jsonl'}:1",
                                                      "train_source": f"{tmp_path / 't.jsonl'}:5"}]
    assert "questions also in train: valid 1" in capsys.readouterr().out


def test_text_rows_say_that_the_prompt_is_in_the_loss_in_prepare_and_in_train(tmp_path, model_dir, capsys):
    out = tmp_path / "text"
    assert run("--data", SAMPLE, "--limit", 10, "--model", model_dir, "--output-format", "text", "--out", out) == 0
    assert "output_format text: each row is one string with no prompt/answer boundary" in capsys.readouterr().out
    assert main(["train", f"model.name={model_dir}", f"data.train_file={out}", f"output_dir={tmp_path / 'run'}",
                 "training.max_steps=1", "--dry-run"]) == 0
    assert "note: records in the text layout ({text: ...}) have no prompt/answer boundary" in capsys.readouterr().out


def test_a_train_jsonl_beside_a_hub_style_validation_file_keeps_it(tmp_path, capsys):
    rows = read_jsonl(SAMPLE)[:12]
    (tmp_path / "snap").mkdir()
    (tmp_path / "snap" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:9]))
    (tmp_path / "snap" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[9:]))
    assert run("--data", tmp_path / "snap", "--out", tmp_path / "out") == 0
    report = json.loads((tmp_path / "out" / "prepare_report.json").read_text())
    assert report["counts"]["splits"]["train"] == 9 and report["counts"]["splits"]["valid"] == 3  # was valid 0
    assert "its validation split is valid" in capsys.readouterr().out
    assert run("--data", tmp_path / "out", "--out", tmp_path / "again") == 0  # prepare's own folder, as it is
    printed = capsys.readouterr().out
    assert "splits: train 9, valid 3 (read apart)\n" in printed and "holds split files: used as they are" in printed
