"""`medtune compare`'s settings without a model: the positionals sorted into inputs, a config file and key=value
overrides, and the evaluation settings every input gets (config file, then overrides, then flags)."""

import pytest

from medtune.commands.compare import split_inputs
from medtune.compare import evals, runs
from medtune.config import Config
from medtune.errors import ConfigError


def test_a_yaml_positional_is_the_config_and_key_value_an_override(tmp_path):
    given = split_inputs(["runs/a", "eval.yaml", "smollm2-135m-instruct", "eval.limit=5", "seed=3"])
    assert given.inputs == ["runs/a", "smollm2-135m-instruct"] and given.config == "eval.yaml"
    assert given.overrides == ["eval.limit=5", "seed=3"]
    (tmp_path / "odd.yaml").mkdir()  # a folder so named is an input, not a config file
    assert split_inputs(["runs/a", str(tmp_path / "odd.yaml")]).inputs == ["runs/a", str(tmp_path / "odd.yaml")]
    assert split_inputs(["runs/a", "runs/b"], "eval.yaml").config == "eval.yaml"


@pytest.mark.parametrize("items, config, message", [
    (["a", "b", "one.yaml", "two.yml"], None, r"two config files given \(one.yaml, two.yml\): give one"),
    (["a", "b", "one.yaml"], "given.yaml", r"two config files given \(given.yaml, one.yaml\)"),
    (["a", "b", "eval-limit=5"], None, r"'eval-limit=5' is neither a run or model nor a key=value override: "
                                       r"an override is a dotted config key, =, and its value"),
    (["a", "b", "="], None, r"'=' is neither a run or model nor a key=value override"),
    (["runs/a", "eval.limit=5"], None, r"compare needs at least two runs or models; eval.limit=5 is read as "
                                       r"config file and key=value overrides, not as inputs"),
    (["runs/a", "cfg.yaml", "seed=1"], None, r"; cfg.yaml, seed=1 are read as config file"),
])
def test_the_errors_say_what_a_positional_was_taken_for(items, config, message):
    with pytest.raises(ConfigError, match=message):
        split_inputs(items, config)


def test_an_override_that_is_also_a_path_asks_for_dot_slash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "lr=1e-4").mkdir()
    with pytest.raises(ConfigError, match=r"'lr=1e-4' reads as a key=value override, but a file or folder has that "
                                          r"name too: write ./lr=1e-4 to compare it"):
        split_inputs(["runs/a", "lr=1e-4"])
    assert split_inputs(["runs/a", "./lr=1e-4"]).inputs == ["runs/a", "./lr=1e-4"]


@pytest.fixture
def two_runs(tmp_path):
    """Two run folders (a config.yaml each) with their own eval settings and prompts."""
    made = []
    for name, limit in (("run-a", 40), ("run-b", 80)):
        cfg = Config()
        cfg.model.name, cfg.output_dir = f"models/{name}", str(tmp_path / name)
        cfg.eval.tasks, cfg.eval.limit, cfg.eval.batch_size = ["medqa"], limit, 2
        cfg.data.system_prompt = f"You are {name}."
        (tmp_path / name).mkdir()
        cfg.save(tmp_path / name / "config.yaml")
        made.append(str(tmp_path / name))
    return runs.read_inputs([*made, "smollm2-135m-instruct"])


def settings(inputs, flags=None, config=None, overrides=()):
    reference = evals.reference(inputs, config)
    shared = evals.shared_settings(reference, flags or {}, overrides, evals.shared_keys(config is not None))
    return {i.label: evals.input_config(i, shared, reference, overrides) for i in inputs}


def test_without_a_config_the_first_runs_settings_are_everyones(two_runs):
    a, b, model = settings(two_runs).values()
    assert a.eval.limit == b.eval.limit == model.eval.limit == 40
    assert b.eval.batch_size == 2 and b.data.system_prompt == "You are run-b."  # its own prompts
    assert model.data.system_prompt == "You are run-a." and model.model.name == "smollm2-135m-instruct"


def test_a_config_file_then_overrides_then_flags_set_every_input(two_runs, tmp_path):
    path = tmp_path / "eval.yaml"
    path.write_text("seed: 7\neval: {tasks: [pubmedqa], limit: 12, batch_size: 4, max_tokens: 64}\n"
                    "data: {system_prompt: You are the config.}\n")
    configs = settings(two_runs, config=str(path))
    for cfg in configs.values():  # the file's seed and whole eval section, for every input
        assert (cfg.seed, cfg.eval.tasks, cfg.eval.limit, cfg.eval.batch_size, cfg.eval.max_tokens) == \
               (7, ["pubmedqa"], 12, 4, 64)
        assert cfg.eval.compare_base is False and cfg.eval.out_dir is None  # one system per input
    a, b, model = configs.values()
    assert (a.model.name, b.data.system_prompt) == ("models/run-a", "You are run-b.")  # runs keep their own
    assert model.data.system_prompt == "You are the config."  # a model by name answers with the config's prompts
    overridden = settings(two_runs, config=str(path), overrides=["eval.limit=5", "generation.top_p=0.5"])
    assert {(c.eval.limit, c.generation.top_p) for c in overridden.values()} == {(5, 0.5)}
    flagged = settings(two_runs, {"eval.limit": 3}, str(path), ["eval.limit=5"])
    assert {c.eval.limit for c in flagged.values()} == {3}


def test_overrides_apply_over_the_first_runs_config_too(two_runs):
    configs = settings(two_runs, overrides=["eval.limit=9", "eval.batch_size=1"])
    assert {(c.eval.limit, c.eval.batch_size) for c in configs.values()} == {(9, 1)}


@pytest.mark.parametrize("override, why", [
    ("model.name=x", "each input names its own model: give it as an input"),
    ("output_dir=x", "a run.s own folder tells it apart; compare writes into --out"),
    ("eval.compare_base=true", "every input is one system"),
])
def test_overrides_that_would_make_the_inputs_alike_are_refused(two_runs, override, why):
    with pytest.raises(ConfigError, match=f"override {override}: {why}"):
        settings(two_runs, overrides=[override])


def test_an_unknown_override_key_is_named_before_any_model_loads(two_runs):
    with pytest.raises(ConfigError, match="eval.limt"):
        settings(two_runs, overrides=["eval.limt=5"])
