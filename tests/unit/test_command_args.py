"""The command line's one grammar (commands/args.py), flag help taken from the config fields, and the layout rule
that the library never imports a command module."""

import argparse
import re
import typing
from pathlib import Path

import pytest

from medtune import config as config_mod
from medtune.cli import VERBS, main, module_of
from medtune.commands.args import Flag, add_flags, config_from_args, flag_values, split_items
from medtune.errors import ConfigError

SRC = Path(__file__).resolve().parents[2] / "src" / "medtune"


def test_positionals_are_one_config_then_overrides():
    items = split_items(["run.yaml", "training.learning_rate=1e-4", "seed=3"])
    assert (items.config, items.overrides, items.text) == ("run.yaml", ["training.learning_rate=1e-4", "seed=3"], [])
    with pytest.raises(ConfigError, match="two config files given"):
        split_items(["a.yaml", "b.yaml"])
    with pytest.raises(ConfigError, match="unexpected argument 'oops'"):
        split_items(["a.yaml", "oops"])
    with pytest.raises(ConfigError, match="two config files given"):
        split_items(["a.yaml", "b.json"])


def test_a_config_file_is_taken_by_what_it_is_not_only_by_its_ending(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("my.json").write_text('{"seed": 7, "training": {"max_steps": 3}}')  # JSON is YAML
    Path("recipe.cfg").write_text("seed: 8\n")
    assert split_items(["my.json", "seed=2"]).config == "my.json"
    assert split_items(["recipe.cfg"]).config == "recipe.cfg"  # an existing file in the config's place
    assert split_items(["nope.json"]).config == "nope.json"  # a config's name: loading it says it is not found
    with pytest.raises(ConfigError, match=r"unexpected argument 'oops': neither a config file \(no file of that "
                                          r"name\) nor a key=value override"):
        split_items(["oops"])
    assert main(["config", "my.json"]) == 0


def test_free_text_is_allowed_only_where_a_verb_takes_it(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("seed: 1\n")
    items = split_items([str(config), "BP = 150/95, what now?", "seed=2"], allow_text=True)
    assert (items.config, items.overrides, items.text) == (str(config), ["seed=2"], ["BP = 150/95, what now?"])
    assert split_items(["notes.yaml"], allow_text=True).text == ["notes.yaml"]  # no such file: it is the prompt


def test_flags_set_their_keys_after_file_and_overrides(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("training: {learning_rate: 0.1, max_steps: 5}\nseed: 1\n")
    flags = [Flag("--learning-rate", "training.learning_rate", {"type": float}), Flag("--seed", "seed", {"type": int})]
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    parser.add_argument("items", nargs="*")
    add_flags(parser, flags)
    args = parser.parse_args([str(config), "training.max_steps=7", "seed=2", "--learning-rate", "0.3"])
    cfg = config_from_args(args, flag_values(args, flags))
    assert (cfg.training.learning_rate, cfg.training.max_steps, cfg.seed) == (0.3, 7, 2)


def test_flag_help_is_the_config_fields_own(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    help_text = next(h for k, _, h in config_mod.describe() if k == "training.learning_rate")
    assert f"{help_text} (training.learning_rate, default 0.0002)" in out


def test_every_verb_lives_in_commands_and_the_library_never_imports_them():
    assert all((SRC / "commands" / f"{module_of(v).rsplit('.', 1)[1]}.py").is_file() for v in VERBS)
    for path in SRC.rglob("*.py"):
        if "commands" in path.parts or path.name in ("cli.py", "__main__.py"):
            continue
        imports = r"^\s*(from medtune\.commands|import medtune\.commands|from medtune import commands)"
        assert not re.search(imports, path.read_text(), re.MULTILINE), path


def test_safety_keys_load_and_are_checked(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("safety: {disclaimer: null, rules: {self_harm: ['jump off']}}\ndata: {safety_examples: 20}\n")
    cfg = config_mod.load(config)
    assert cfg.safety.disclaimer is None and cfg.safety.rules == {"self_harm": ["jump off"]}
    assert cfg.data.safety_examples == 20
    assert config_mod.load(None, ["data.safety_examples=extra.jsonl"]).data.safety_examples == "extra.jsonl"
    typing.Union[str, int, None]  # cached by typing: get_type_hints may now hand back this order
    assert config_mod.load(None, ["data.safety_examples=16"]).data.safety_examples == 16
    with pytest.raises(ConfigError, match="data.safety_examples = 0 must be at least 1"):
        config_mod.load(None, ["data.safety_examples=0"])
    with pytest.raises(ConfigError, match=r"safety.threshold = 1.5 must be in \(0, 1\]"):
        config_mod.load(None, ["safety.threshold=1.5"])


def test_a_removed_key_says_what_to_write_instead(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("safety: {system_prompt: Be careful.}\n")
    with pytest.raises(ConfigError, match="'safety.system_prompt' is no longer a setting: set data.system_prompt"):
        config_mod.load(config)
