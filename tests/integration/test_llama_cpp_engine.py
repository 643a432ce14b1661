"""The llama.cpp engine on real llama.cpp (llama-cpp-python): a run (a tiny Llama with SmolLM2's tokenizer, which
llama.cpp's converter knows, trained to answer one question with its reasoning, plus a LoRA adapter) converted once
to an f16 GGUF file. Its greedy tokens, with and without the quickstart's repetition penalty, and its
reasoning/answer split are the default engine's; the cache is reused, and rebuilt after retraining; the
quantization is a choice that eval's results name; multiple choice by log-likelihood picks what the default engine
picks; generate runs it with the safety layer."""

from __future__ import annotations

import importlib.util
import json
import shutil

import pytest
import torch
from inference_helpers import make_run, peaked_llama

from medtune import cli
from medtune.commands.args import engine_class
from medtune.config import DEFAULT_DISCLAIMER, DEFAULT_EMERGENCY, load
from medtune.inference.engine import Engine, SamplingParams

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread"),
              pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                 reason="llama-cpp-python is not installed (scripts/test.sh installs it)")]
SYSTEM = "You are a test assistant."  # make_run's system prompt
QUESTION = "Which nerve supplies the deltoid?"
REASONING, ANSWER = "Recall the anatomy.", "The answer is the axillary nerve."
MEDQA = "tests/data/eval/medqa.jsonl"


@pytest.fixture(scope="module")
def run(smollm2, tmp_path_factory):
    """A run directory whose base answers QUESTION with REASONING and ANSWER (an untrained adapter on top)."""
    root = tmp_path_factory.mktemp("llama-cpp-engine")
    model, tokenizer = peaked_llama(smollm2, root / "base")
    prompt = Engine.load(model=str(root / "base"), system_prompt=SYSTEM).prompt([{"role": "user",
                                                                                  "content": QUESTION}])
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(f"<think>{REASONING}</think>{ANSWER}<|im_end|>", add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt_ids + answer_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):  # until greedy decoding gives the answer back
        model(input_ids=ids, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.save_pretrained(root / "base")
    return make_run(root / "base", root / "run", scale=0.0)


@pytest.fixture(scope="module")
def engines(run):
    """(the default engine, the llama.cpp engine) on the run; the llama.cpp one converts it (f16)."""
    llama = engine_class("llama.cpp").load(run=str(run))
    yield Engine.load(run=str(run)), llama
    llama.close()


def ask(engine, question: str, **params):
    return engine.generate([[{"role": "user", "content": question}]], SamplingParams(**params))[0]


@pytest.mark.parametrize("penalty", [1.0, 1.15])
def test_greedy_tokens_and_the_reasoning_split_are_the_default_engine_s(engines, penalty):
    default, llama = engines
    want, got = ask(default, QUESTION, max_tokens=32, repetition_penalty=penalty), \
        ask(llama, QUESTION, max_tokens=32, repetition_penalty=penalty)
    assert got.token_ids == want.token_ids and got.finish_reason == want.finish_reason == "stop"
    assert (got.reasoning, got.answer) == (want.reasoning, want.answer) == (REASONING, ANSWER)
    other_want = ask(default, "Tell me about fevers.", max_tokens=12, repetition_penalty=penalty)
    other_got = ask(llama, "Tell me about fevers.", max_tokens=12, repetition_penalty=penalty)
    assert other_got.token_ids == other_want.token_ids  # an answer it was never trained on: the first 12 tokens


def test_it_converts_once_says_so_and_names_the_file(engines, run):
    _, llama = engines
    assert llama.quant == "f16" and llama.gguf.file.parent.parent == run / "gguf"
    assert llama.gguf.file.name == "run.F16.gguf" and llama.context_length == 512  # the model's own context


def test_the_cache_is_reused_and_rebuilt_after_retraining_only(engines, run, tmp_path, capsys):
    copy = shutil.copytree(run, tmp_path / "run")  # with its gguf/: the same adapter, so the same key
    capsys.readouterr()
    loader = engine_class("llama.cpp")
    again = loader.load(run=str(copy))
    file, mtime = again.gguf.file, again.gguf.file.stat().st_mtime_ns
    again.close()
    assert "converting" not in capsys.readouterr().err and file.parent.parent == copy / "gguf"
    reused = loader.load(run=str(copy))
    reused.close()
    assert reused.gguf.file == file and file.stat().st_mtime_ns == mtime and "converting" not in \
        capsys.readouterr().err
    make_run(load(copy / "config.yaml").model.name, copy, scale=0.01)  # retrained: another adapter
    retrained = loader.load(run=str(copy))
    retrained.close()
    err = capsys.readouterr().err
    assert f"(the weights changed since the last conversion ({file.parent.name}))" in err
    assert retrained.gguf.file != file and not file.parent.exists()  # the old conversion is gone
    assert sorted(p.name for p in (copy / "gguf").iterdir() if not p.name.startswith(".")) == \
        [retrained.gguf.file.parent.name]


def test_the_quantization_is_a_choice_and_eval_names_it(run, tmp_path):
    out = tmp_path / "eval"
    assert cli.main(["eval", "--run", str(run), "--task", MEDQA, "--limit", "3", "--mode", "generate",
                     "--max-tokens", "8", "--engine", "llama.cpp", "generation.gguf_quant=q8_0",
                     "safety.classifier=false", "--out", str(out)]) == 0
    system = json.loads((out / "results.json").read_text())["systems"]["model"]
    assert (system["engine"], system["quant"]) == ("llama.cpp", "q8_0")
    assert sorted(p.name.split("-")[0] for p in (run / "gguf").iterdir() if not p.name.startswith(".")) == \
        ["f16", "q8_0"]
    from medtune.compare import evals
    from medtune.evaluation.evaluate import load_tasks

    cfg = load(out / "config.yaml")
    found, why_not = evals.stored(out, cfg, load_tasks(cfg), "transformers")
    assert found is None and why_not == "made on llama.cpp q8_0, not transformers"  # compare never mixes them


def test_multiple_choice_by_log_likelihood_picks_what_the_default_engine_picks(engines):
    from medtune.evaluation.loglik import score_mcq
    from medtune.evaluation.tasks import load_task

    default, llama = engines
    task = load_task(MEDQA, None, 12)
    want, got = score_mcq(default.model, default.tokenizer, task), score_mcq(llama.model, llama.tokenizer, task)
    assert [v["prediction"] for v in got] == [v["prediction"] for v in want]
    largest = max(abs(a - b) for v, w in zip(got, want) for a, b in zip(v["logliks"], w["logliks"]))
    assert largest < 0.05


def test_generate_runs_on_it_with_the_safety_layer(engines, run, capsys):
    assert cli.main(["generate", "--run", str(run), "--engine", "llama.cpp", "--prompt", QUESTION, "--json",
                     "safety.classifier=false"]) == 0
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert result["reasoning"] == REASONING and result["answer"] == f"{ANSWER}\n\n{DEFAULT_DISCLAIMER}"
    assert "medtune: engine: llama.cpp, f16 GGUF" in err and "converting" not in err
    assert cli.main(["generate", "--run", str(run), "--engine", "llama.cpp", "--prompt",
                     "I just took a whole bottle of my sleeping pills", "--json", "safety.classifier=false"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["answer"] == DEFAULT_EMERGENCY and result["stats"]["generated_tokens"] == 0
