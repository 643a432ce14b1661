"""Config: defaults, the common medical-LoRA layout, overrides and strict validation."""

import pytest

from medtune import config
from medtune.errors import ConfigError

# noqa: E501 -- the layout exactly as users write it
COMMON_LAYOUT = """\
seed: 816
output_dir: ./checkpoints/model
model:    {name: microsoft/Phi-4-mini-instruct, max_length: 512}
lora:     {r: 16, alpha: 32, dropout: 0.1, target_modules: [q_proj, v_proj, k_proj, o_proj]}
training: {batch_size: 4, max_steps: 36, learning_rate: 2e-4, gradient_accumulation_steps: 8, early_stopping_patience: 3}
data:     {train_file: ./data/my_custom_data.jsonl, system_prompt: "You are a careful medical assistant ..."}
"""


def write(tmp_path, text):
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def test_common_layout_loads_unchanged(tmp_path):
    cfg = config.load(write(tmp_path, COMMON_LAYOUT))
    assert cfg.seed == 816
    assert cfg.output_dir == "./checkpoints/model"
    assert cfg.model.name == "microsoft/Phi-4-mini-instruct" and cfg.model.max_length == 512
    assert cfg.lora.target_modules == ["q_proj", "v_proj", "k_proj", "o_proj"]
    assert cfg.lora.dropout == 0.1
    # YAML 1.1 reads 2e-4 as a string: it must still become the float
    assert cfg.training.learning_rate == pytest.approx(2e-4)
    assert cfg.training.early_stopping_patience == 3
    assert cfg.data.system_prompt.startswith("You are a careful")


def test_defaults_come_from_the_classes():
    cfg = config.load()
    assert cfg.method == "lora"
    assert cfg.data.overlong == "drop"
    assert cfg.model.trust_remote_code is False


def test_dotted_overrides_parse_values(tmp_path):
    overrides = ["training.learning_rate=1e-4", "lora.r=8", "data.leakage_files=[a.jsonl, b.jsonl]",
                 "training.method=qlora"]
    cfg = config.load(write(tmp_path, COMMON_LAYOUT), overrides)
    assert cfg.training.learning_rate == pytest.approx(1e-4)
    assert cfg.lora.r == 8
    assert cfg.data.leakage_files == ["a.jsonl", "b.jsonl"]
    assert cfg.method == "qlora"  # training.method is an alias that wins


def test_unknown_key_names_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'training.learnig_rate'.*did you mean 'training.learning_r"):
        config.load(write(tmp_path, "training: {learnig_rate: 1e-4}\n"))


def test_unknown_section_names_closest(tmp_path):
    with pytest.raises(ConfigError, match=r"unknown key 'trainig'.*'training'"):
        config.load(write(tmp_path, "trainig: {batch_size: 2}\n"))


@pytest.mark.parametrize(
    "override, pattern",
    [
        ("training.batch_size=abc", r"training.batch_size = 'abc' should be int"),
        ("training.batch_size=1.5", r"training.batch_size = 1.5 should be int"),
        ("model.trust_remote_code=maybe", r"model.trust_remote_code = 'maybe' should be bool"),
        ("lora.method=qlra", r"lora.method = 'qlra' is not one of .*did you mean 'qlora'"),
        ("data.leakage_files=x.jsonl", r"data.leakage_files = 'x.jsonl' should be list"),
        ("training=3", r"training must be a mapping"),
    ],
)
def test_wrong_type_names_field_and_value(override, pattern):
    with pytest.raises(ConfigError, match=pattern):
        config.load(None, [override])


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        config.load(None, ["training.learning_rate"])
    with pytest.raises(ConfigError, match="config file not found"):
        config.load(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="not valid YAML"):
        config.load(write(tmp_path, "model: {name: [unclosed\n"))


def test_flag_values_beat_file(tmp_path):
    cfg = config.load(write(tmp_path, COMMON_LAYOUT), values={"data.train_file": "x: y.jsonl", "seed": 3})
    assert cfg.data.train_file == "x: y.jsonl"  # flag values are not YAML-parsed
    assert cfg.seed == 3


def test_saved_config_reloads_identically(tmp_path):
    cfg = config.load(write(tmp_path, COMMON_LAYOUT))
    cfg.save(tmp_path / "resolved.yaml")
    assert config.load(tmp_path / "resolved.yaml") == cfg


@pytest.mark.parametrize("key", ["training.method", "lora.method"])
def test_a_saved_config_with_the_method_alias_reloads(tmp_path, key):
    """A run's config.yaml, saved from `training.method=full` on the command line, loads again (--resume reads it)."""
    cfg = config.load(None, values={key: "full"})
    cfg.save(tmp_path / "resolved.yaml")
    again = config.load(tmp_path / "resolved.yaml")
    assert again.method == "full" and again.lora.method == "full"


def test_every_field_has_help():
    rows = config.describe()
    assert len(rows) > 50
    assert all(help_text for _, _, help_text in rows)


def test_override_mistakes_are_named_as_the_command_line_s(tmp_path):
    path = write(tmp_path, COMMON_LAYOUT)
    with pytest.raises(ConfigError, match=r"^command line: unknown key 'training.learnig_rate'"):
        config.load(path, ["training.learnig_rate=1e-4"])
    with pytest.raises(ConfigError, match=rf"^{path}: unknown key 'training.learnig_rate'"):
        config.load(write(tmp_path, "training: {learnig_rate: 1e-4}\n"), ["seed=1"])


def test_yaml_error_is_one_line_with_its_place(tmp_path):
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, "seed: 1\nmodel: {name: [unclosed\n"))
    message = str(info.value)
    assert "\n" not in message and "config.yaml:3:1: not valid YAML" in message


def test_template_is_checked_at_load_and_split_takes_a_list():
    with pytest.raises(ConfigError, match=r"data.template = 'phi_think' is not one of .*did you mean 'phi-think'"):
        config.load(None, ["data.template=phi_think"])
    assert config.load(None, ["data.split=[0.7, 0.2, 0.1]"]).data.split == [0.7, 0.2, 0.1]
    assert config.load(None, ["model.name="]).model.name == ""


def test_text_fields_take_an_override_as_written():
    cfg = config.load(None, ["data.system_prompt=You are a doctor: be careful", "model.revision=1234",
                             "safety.refusal=[no]"])
    assert (cfg.data.system_prompt, cfg.model.revision, cfg.safety.refusal) == \
        ("You are a doctor: be careful", "1234", "[no]")
    assert config.load(None, ["data.system_prompt=null"]).data.system_prompt is None
    with pytest.raises(ConfigError, match=r"override training.learning_rate='\[1': not a valid YAML value"):
        config.load(None, ["training.learning_rate=[1"])


def test_an_override_fills_a_section_left_empty_in_the_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("training:\nlora:\n  r: 4\n")
    cfg = config.load(path, ["training.max_steps=2"])
    assert cfg.training.max_steps == 2 and cfg.lora.r == 4


@pytest.mark.parametrize("override", ["data.limit=-3", "data.limit=0", "eval.limit=-1", "training.learning_rate=inf"])
def test_limits_and_learning_rate_are_checked_at_load(override):
    with pytest.raises(ConfigError, match=override.split("=")[0].replace(".", r"\.") + " = .* must be"):
        config.load(None, [override])
