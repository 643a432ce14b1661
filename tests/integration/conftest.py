"""Fixtures of the integration tests: one torch thread for tiny models, and small models trained for a few seconds
to answer in known ways, each built once per session (cached under pytest's base temp folder); a test that asks
for one of the costly fixtures (SLOW_FIXTURES) is marked slow.

    echo_model       the tiny llama answering the four QA questions word for word, "<think>r</think>a<|end|>"
                     (with or without the default system prompt): exact answers, reasoning, streaming, batching
    answering_model  the tiny llama writing "<think>Recall the anatomy.</think>The answer is B" after the
                     generate-mode prompts of multiple-choice items
    judge_model      the tiny llama answering LIVE_VERDICT to the judge prompts of LIVE_ITEMS
"""

from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

# fixtures that train a model, convert the real one or start a server: a test that asks for one is slow, so the
# fast lane (pytest -m "not slow") leaves it out without each test having to say so
SLOW_FIXTURES = {"echo_model", "answering_model", "judge_model", "refusing_model", "smollm2", "live_serve"}


def pytest_collection_modifyitems(items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@contextmanager
def single_thread():
    """Tiny models run fastest, and steadiest on a shared machine, on one thread (~10x for 140k parameters)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def one_thread():
    with single_thread():
        yield


def cached(tmp_path_factory, name: str, build) -> Path:
    """build(folder) once per session, whichever test asks first."""
    folder = tmp_path_factory.getbasetemp() / "test-models" / name
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        build(folder)
        (folder / ".done").touch()
    return folder


def overfit(base: Path, out: Path, examples: list[tuple[str, str]], steps: int, end: str = "") -> Path:
    """Copy `base` and train it on (prompt, completion) pairs, loss on completion + `end` only, until greedy
    decoding gives each completion back (a prompt of "" trains on the whole text)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    ids, labels = [], []
    for prompt, completion in examples:
        p = tok(prompt, add_special_tokens=False)["input_ids"] if prompt else []
        c = tok(completion + end, add_special_tokens=False)["input_ids"]
        ids.append(p + c)
        labels.append([-100] * len(p) + c)
    batch = {"input_ids": _pad(ids, tok.pad_token_id), "labels": _pad(labels, -100),
             "attention_mask": _pad([[1] * len(r) for r in ids], 0)}
    with single_thread():
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    shutil.copytree(base, out)
    model.save_pretrained(out)
    return out


def _pad(rows: list[list[int]], value: int):
    import torch

    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


@pytest.fixture(scope="session")
def echo_model(tmp_path_factory, tiny_llama) -> Path:
    from inference_helpers import QA
    from transformers import AutoTokenizer

    from medtune.config import DEFAULT_SYSTEM_PROMPT

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    texts = [_conversation(tok, q, r, a, system) for q, r, a in QA for system in (None, DEFAULT_SYSTEM_PROMPT)]
    return cached(tmp_path_factory, "echo", lambda out: overfit(tiny_llama, out, [("", t) for t in texts], 150))


def _conversation(tok, question, reasoning, answer, system):
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question},
                 {"role": "assistant", "content": f"<think>{reasoning}</think>{answer}"}]
    return tok.apply_chat_template(messages, tokenize=False)


@pytest.fixture(scope="session")
def answering_model(tmp_path_factory, tiny_llama) -> Path:
    from eval_helpers import ANSWER, REASONING, mcq_prompts

    def build(folder: Path):
        task, engine = mcq_prompts(tiny_llama, 8)
        prompts = [engine.prompt(task.messages(ex)) for ex in task.examples()]
        overfit(tiny_llama, folder, [(p, f"<think>{REASONING}</think>{ANSWER}") for p in prompts], 70, "<|end|>")

    return cached(tmp_path_factory, "answering", build)


@pytest.fixture(scope="session")
def judge_model(tmp_path_factory, tiny_llama) -> Path:
    from eval_helpers import LIVE_ITEMS, LIVE_VERDICT

    from medtune.evaluation.judge import messages_for
    from medtune.inference.engine import Engine

    def build(folder: Path):
        engine = Engine.load(model=str(tiny_llama))
        prompts = [engine.prompt(messages_for(item)) for item in LIVE_ITEMS]
        overfit(tiny_llama, folder, [(p, LIVE_VERDICT) for p in prompts], 100, "<|end|>")

    return cached(tmp_path_factory, "judge", build)
