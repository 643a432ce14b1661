"""The README demo's data: the held-out questions are never among the training records, and the quickstart recipe
trains on the bundled demo file with the system prompt it will be asked with."""

import json
from pathlib import Path

from medtune import config as config_mod

ROOT = Path(__file__).resolve().parents[2]
ASSETS = ROOT / "src" / "medtune" / "assets"


def questions(name: str) -> set[str]:
    return {json.loads(line)["Question"] for line in (ASSETS / name).read_text().splitlines() if line.strip()}


def test_held_out_questions_are_never_trained_on():
    held = questions("medical_o1_heldout.jsonl")
    assert len(held) == 10
    assert not held & questions("medical_o1_demo.jsonl") and not held & questions("medical_tiny.jsonl")


def test_quickstart_trains_the_builtin_model_on_the_demo_file():
    cfg = config_mod.load(ROOT / "configs" / "quickstart.yaml")
    assert cfg.model.name == "smollm2-135m-instruct" and cfg.data.train_file.endswith("medical_o1_demo.jsonl")
    assert "<think></think>" in cfg.data.system_prompt and cfg.generation.repetition_penalty > 1
