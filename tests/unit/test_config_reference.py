"""`medtune config`: the resolved config, the key reference it lists, and docs/config.md kept equal to it."""

from pathlib import Path

import pytest
import yaml

from medtune import config as config_mod
from medtune import config_reference as ref
from medtune.cli import main

REPO = Path(__file__).resolve().parents[2]


def test_committed_config_page_is_the_generated_one():
    committed = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    assert committed == ref.as_markdown(), (
        "docs/config.md differs from the config classes: regenerate it with "
        "'medtune config --list --markdown > docs/config.md'")


def test_every_key_is_listed_once_with_its_default_and_help():
    listed = [k for s in ref.sections() for k in s.keys]
    assert [k.key for k in listed] == [key for key, _, _ in config_mod.describe()]
    assert all(k.help for k in listed), [k.key for k in listed if not k.help]
    assert all(s.about and "(" not in s.about.split()[0] for s in ref.sections())  # a written docstring each
    by_key = {k.key: k for k in listed}
    assert by_key["training.learning_rate"].default == config_mod.TrainingConfig().learning_rate
    assert by_key["training.batch_size"].allowed == "at least 1"  # from config.RANGES
    assert by_key["lora.method"].allowed == "one of: lora, qlora, full"
    assert by_key["training.method"].type == "str or null"
    assert by_key["data.safety_examples"].type == "int or str or null"
    assert by_key["safety.threshold"].allowed == "in (0, 1]"


def test_value_text_reads_as_yaml():
    for value in (None, True, 0.0002, 2048, "", "auto", [], {}, {"type": "linear"}, "x" * 80):
        assert yaml.safe_load(ref.value_text(value)) == value


def test_list_prints_every_key(capsys):
    assert main(["config", "--list"]) == 0
    out = capsys.readouterr().out
    assert "training.learning_rate (float, default 0.0002; above 0 and finite)\n    Peak learning rate." in out
    assert all(key in out for key, _, _ in config_mod.describe())
    assert main(["config", "--list", "--markdown"]) == 0
    assert capsys.readouterr().out == ref.as_markdown()


def test_config_prints_the_resolved_config(tmp_path, capsys):
    path = tmp_path / "run.yaml"
    path.write_text("model: {name: some/model}\ntraining: {learning_rate: 2e-4}\n")
    assert main(["config", str(path), "training.max_steps=7", "data.system_prompt=Be careful: think."]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed == config_mod.load(path, ["training.max_steps=7", "data.system_prompt=Be careful: think."]).to_dict()
    assert printed["training"]["max_steps"] == 7 and printed["model"]["name"] == "some/model"


@pytest.mark.parametrize("argv, message", [
    (["config", "training.learnig_rate=1"], "did you mean 'training.learning_rate'?"),
    (["config", "--markdown"], "--markdown goes with --list"),
    (["config", "--list", "seed=3"], "--list describes every key and takes no config file or override"),
])
def test_config_errors_are_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
