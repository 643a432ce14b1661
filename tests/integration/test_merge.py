"""`medtune merge`: the merged folder loads with plain from_pretrained and gives base + adapter's logits, keeps the
chat template, stops where the run stops, carries the run's config (so medtune prompts it as trained), and never
writes over a folder."""

import json

import pytest
import torch
from inference_helpers import make_run
from transformers import AutoModelForCausalLM, AutoTokenizer

from medtune.cli import main
from medtune.inference.engine import Engine

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]


@pytest.fixture(scope="module")
def merged(tmp_path_factory, tiny_llama):
    run = make_run(tiny_llama, tmp_path_factory.mktemp("merge") / "run")
    out = run.parent / "merged"
    assert main(["merge", "--run", str(run), "--out", str(out)]) == 0
    return run, out


def logits(model, ids):
    with torch.no_grad():
        return model.eval()(input_ids=torch.tensor([ids])).logits


def test_plain_from_pretrained_gives_base_plus_adapter(merged, tiny_llama, capsys):
    from peft import PeftModel

    run, out = merged
    config = json.loads((out / "config.json").read_text())
    assert "quantization_config" not in config
    peft = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run / "adapter")
    ids = list(range(5, 70))
    torch.testing.assert_close(logits(AutoModelForCausalLM.from_pretrained(out), ids), logits(peft, ids),
                               rtol=1e-5, atol=1e-5)
    info = json.loads((out / "medtune_merge.json").read_text())
    assert info["same_greedy_tokens"] and info["max_logit_diff"] < 1e-4 and info["dtype"] == "float32"


def test_the_folder_keeps_the_template_the_stops_and_the_runs_prompt(merged, tiny_llama):
    run, out = merged
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.chat_template == AutoTokenizer.from_pretrained(tiny_llama).chat_template
    stops = json.loads((out / "generation_config.json").read_text())["eos_token_id"]
    assert set(tok.convert_tokens_to_ids(["</s>", "<|end|>"])) <= set(stops)
    engine = Engine.load(model=str(out))  # the run's config.yaml beside the weights: its system prompt
    assert engine.system_prompt == "You are a test assistant." and "(merged)" in (out / "README.md").read_text()


def test_half_precision_is_written_and_checked(merged, tmp_path):
    run, _ = merged
    out = tmp_path / "bf16"
    assert main(["merge", "--run", str(run), "--out", str(out), "--dtype", "bfloat16"]) == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert json.loads((out / "medtune_merge.json").read_text())["max_logit_diff"] < 5e-2


def test_refuses_a_folder_that_holds_something_and_a_run_without_adapter(merged, tmp_path, capsys):
    run, out = merged
    assert main(["merge", "--run", str(run), "--out", str(out)]) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert main(["merge", "--model", str(out), "--out", str(tmp_path / "x")]) == 2
    assert "nothing to merge" in capsys.readouterr().err
