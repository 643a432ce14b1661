"""`medtune generate` end to end on the echo model: plain, streamed, JSON, run directories, errors."""

import json

import pytest
from inference_helpers import QA, make_run

from medtune import cli
from medtune.config import DEFAULT_DISCLAIMER

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]
QUESTION, REASONING, ANSWER = QA[0]
SAID = f"{ANSWER}\n\n{DEFAULT_DISCLAIMER}"  # the safety layer adds the disclaimer, once


@pytest.fixture(scope="module")
def echo(echo_model):
    return str(echo_model)


def run(capsys, *argv):
    code = cli.main(["generate", "--engine", "transformers", *argv])  # the default engine's behaviour
    out, err = capsys.readouterr()
    return code, out, err


def test_json_has_reasoning_answer_stop_and_stats(capsys, echo):
    code, out, _ = run(capsys, "--model", echo, "--prompt", QUESTION, "--json")
    result = json.loads(out)
    assert code == 0 and (result["reasoning"], result["answer"], result["finish_reason"]) == (REASONING, SAID, "stop")
    assert result["disclaimer"] == f"\n\n{DEFAULT_DISCLAIMER}" and result["safety"] is None
    stats = {"prompt_tokens", "generated_tokens", "tokens_per_s", "first_token_s", "peak_memory_mb"}
    assert stats <= set(result["stats"])


def test_plain_output_sets_reasoning_apart_then_stats(capsys, echo):
    code, out, err = run(capsys, "--model", echo, "--prompt", QUESTION)
    assert code == 0 and out == f"Reasoning:\n{REASONING}\nAnswer:\n{SAID}\n"
    stats = err.strip().splitlines()[-1]  # (transformers may draw a loading bar above it)
    assert stats.startswith("prompt ") and "tokens/s" in stats and "first token" in stats and "peak memory" in stats


def test_stream_hiding_reasoning_prints_the_answer_only(capsys, echo):
    code, out, _ = run(capsys, "--model", echo, "--prompt", QA[2][0], "--stream", "--hide-reasoning")
    assert code == 0 and out == f"{QA[2][2]}\n\n{DEFAULT_DISCLAIMER}\n"


def test_max_tokens_cut_in_the_reasoning_is_reported(capsys, echo):
    code, out, err = run(capsys, "--model", echo, "--prompt", QUESTION, "--max-tokens", "3", "--stream")
    assert code == 0 and "did not finish within max_tokens" in out and "stop: length" in err


def test_extra_eos_token(capsys, echo):
    code, out, _ = run(capsys, "--model", echo, "--prompt", QUESTION, "--extra-eos-token", "</think>", "--json")
    assert json.loads(out)["reasoning_finished"] is False and json.loads(out)["answer"] == ""


def test_positional_prompt_with_adapter_and_override(capsys, tmp_path, tiny_llama):
    run_dir = make_run(tiny_llama, tmp_path / "run")
    code, out, _ = run(capsys, "--model", str(tiny_llama), "--adapter", str(run_dir / "adapter"),
                       "A 45-year-old presents with chest pain", "--max-tokens", "4", "--json")
    assert code == 0 and json.loads(out)["stats"]["generated_tokens"] <= 4
    code, out, _ = run(capsys, "--run", str(run_dir), "--prompt", "q", "--max-tokens", "2", "--json",
                       "model.dtype=float32")
    assert code == 0 and json.loads(out)["model"] == "run"


def test_sampling_defaults_come_from_the_runs_generation_section(capsys, tmp_path, tiny_llama):
    from medtune import config as config_mod

    run_dir = make_run(tiny_llama, tmp_path / "run")
    cfg = config_mod.load(run_dir / "config.yaml")
    cfg.generation.max_tokens, cfg.generation.repetition_penalty = 3, 1.15
    cfg.save(run_dir / "config.yaml")
    code, out, _ = run(capsys, "--run", str(run_dir), "--prompt", "q", "--json")
    assert code == 0 and json.loads(out)["stats"]["generated_tokens"] <= 3
    code, out, _ = run(capsys, "--run", str(run_dir), "--prompt", "q", "--json", "--max-tokens", "5")
    assert code == 0 and json.loads(out)["stats"]["generated_tokens"] == 5  # the flag wins; the tiny model never stops


@pytest.mark.parametrize("argv, message", [
    (["--prompt-file", "/nonexistent/q.txt"], "prompt file not found"),
    (["--prompt", "  "], "the prompt is empty"),
    (["--prompt", "a", "b"], "give the prompt once"),
    (["--prompt", "q", "--adapter", "/nonexistent"], "--adapter /nonexistent: no such folder"),
    (["--prompt", "q", "--temperature", "-1"], "generation.temperature = -1.0 must be 0 (greedy) or more"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, echo, argv, message):
    code, _, err = run(capsys, "--model", echo, *argv)
    last = err.strip().splitlines()[-1]  # one line, no traceback
    assert code == 2 and last.startswith("medtune generate: error: ") and message in last


def test_json_and_stream_exclude_each_other(capsys, echo):
    with pytest.raises(SystemExit) as exit_info:
        run(capsys, "--model", echo, "--prompt", "q", "--json", "--stream")
    assert exit_info.value.code == 2
