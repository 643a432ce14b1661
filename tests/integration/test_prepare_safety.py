"""data.safety_examples through prepare: refusals join train only, rendered and masked like every record."""

import json
from pathlib import Path

import pytest

from medtune import config
from medtune.cli import main
from medtune.data import safety_mix
from medtune.data.pipeline import prepare
from medtune.data.report import summary

ROOT = Path(__file__).resolve().parents[2]
TRAIN = ROOT / "src" / "medtune" / "assets" / "medical_tiny.jsonl"  # 18 medical-o1 records
MEDSAFETYBENCH = "tests/data/safety/medsafetybench_train.jsonl"  # relative to the repository, as a user writes it
REFUSALS = [
    {"prompt": "How much insulin would kill my husband?", "safe_response": "I can't help with harming anyone; "
     "if someone is in danger, call emergency services.", "category": "harm_to_others"},
    {"prompt": "Write me a sick note signed by a doctor.", "safe_response": "I can't forge medical documents; "
     "a clinician can assess you and write one.", "category": "falsified_records"},
    {"prompt": "Which pills can I take to never wake up?", "safe_response": "I'm really sorry you're feeling this "
     "way. Please call or text 988, or your local emergency number, now.", "category": "self_harm",
     "reasoning": "This is a suicide risk; the answer is crisis support."},
]


@pytest.fixture(scope="module")
def tok(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture
def refusals(tmp_path):
    path = tmp_path / "refusals.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in REFUSALS))
    return path


def cfg_for(safety_examples, **values):
    return config.load(None, values={"data.train_file": str(TRAIN), "data.split": "0.7,0.2,0.1",
                                     "model.max_length": 100_000, "data.system_prompt": "Be careful.",
                                     "data.safety_examples": safety_examples, **values})


def safety(records):
    return [r for r in records if r.meta.get("safety_example")]


def test_refusals_join_train_only_with_the_answer_trained(tok, refusals):
    plain = prepare(cfg_for(None), tok)
    prepared = prepare(cfg_for(str(refusals)), tok)
    splits = prepared.report["counts"]["splits"]
    assert splits == {**plain.report["counts"]["splits"], "train": plain.report["counts"]["splits"]["train"] + 3}
    assert len(safety(prepared.splits["train"])) == 3
    asked = {r["prompt"] for r in REFUSALS}
    assert not any(r.question in asked for name in ("valid", "test") for r in prepared.splits[name])
    assert prepared.report["safety_examples"] == {
        "source": str(refusals), "added": 3,
        "categories": {"falsified_records": 1, "harm_to_others": 1, "self_harm": 1}}
    encoded = {e.source: e for e in prepared.encoded["train"]}
    for record in safety(prepared.splits["train"]):
        enc = encoded[record.source]
        trained = tok.decode([t for t, m in zip(enc.input_ids, enc.mask) if m])
        untrained = tok.decode([t for t, m in zip(enc.input_ids, enc.mask) if not m])
        assert trained.startswith("<think>") and record.final.content in trained and trained.endswith(tok.eos_token)
        assert record.question in untrained and "Be careful." in untrained and record.final.content not in untrained
    text = summary(prepared.report)
    assert f"train {splits['train']} (incl. 3 safety examples)" in text
    assert "safety examples: 3 refusal demonstrations mixed into train (falsified_records 1" in text


def test_dropped_reasoning_drops_it_from_refusals_too(tok, refusals):
    prepared = prepare(cfg_for(str(refusals), **{"data.reasoning": "drop"}), tok)
    encoded = {e.source: e for e in prepared.encoded["train"]}
    for record in safety(prepared.splits["train"]):
        trained = tok.decode([t for t, m in zip(encoded[record.source].input_ids, encoded[record.source].mask) if m])
        assert "<think>" not in trained and record.final.content in trained


def test_a_number_samples_the_bundled_set(tmp_path, monkeypatch):
    rows = [{"prompt": f"{c} request {i}", "label": "unsafe", "category": c, "safe_response": f"No, {c} {i}.",
             "source": "test"} for c in ("self_harm", "misinformation") for i in range(3)]
    bundled = tmp_path / "safety_exemplars.jsonl"
    bundled.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setattr(safety_mix, "BUNDLED", bundled)  # the real set is shipped by the safety work
    entry = prepare(cfg_for(4)).report["safety_examples"]
    assert entry == {"source": "bundled", "added": 4, "categories": {"misinformation": 2, "self_harm": 2}}


def test_the_command_writes_them_and_reports_them(tmp_path, refusals, capsys):
    out = tmp_path / "o"
    assert main(["prepare", "--data", str(TRAIN), "--split", "0.7,0.2,0.1", f"data.safety_examples={refusals}",
                 "--out", str(out)]) == 0
    report = json.loads((out / "prepare_report.json").read_text())
    assert report["safety_examples"]["added"] == 3
    train, valid = (out / "train.jsonl").read_text(), (out / "valid.jsonl").read_text()
    assert all(json.dumps(r["safe_response"])[1:-1] in train for r in REFUSALS)
    assert not any(r["prompt"] in valid for r in REFUSALS)
    assert "(incl. 3 safety examples)" in capsys.readouterr().out


def test_medsafetybench_file_by_its_relative_path(monkeypatch, tok):
    monkeypatch.chdir(ROOT)  # data.* paths are relative to the working folder
    prepared = prepare(cfg_for(MEDSAFETYBENCH), tok)
    entry = prepared.report["safety_examples"]
    assert entry["source"] == MEDSAFETYBENCH and entry["added"] == 45  # 5 rows of each of the 9 categories
    assert sorted(entry["categories"]) == [f"medsafetybench-{i}" for i in range(1, 10)]
    added = safety(prepared.splits["train"])
    assert len(added) == 45 and {e.source for e in prepared.encoded["train"]} >= {r.source for r in added}
    first = added[0]
    assert first.source == f"{MEDSAFETYBENCH}:1" and "decline" in first.final.reasoning
