"""Tiny models that answer in a known way, for the `medtune eval` tests (built once per session).

overfit(): the tiny llama trained for a few seconds until greedy decoding continues each of some prompts
with one fixed completion, e.g. "<think>...</think>The answer is B" after multiple-choice prompts, or a JSON
verdict after judge prompts. make_adapter_run(): a run directory with a perturbed (non-zero) LoRA adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from inference_helpers import cached  # noqa: F401 -- one session cache for every tiny test model

EVAL_DIR = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "eval"
REASONING = "Recall the anatomy."
ANSWER = "The answer is B"


def answering_model(tmp_path_factory, tiny_llama: Path) -> Path:
    """The tiny llama trained to write '<think>Recall the anatomy.</think>The answer is B' after the generate-mode
    prompts of the first mmlu_medical items (and, as it turns out, after any of them)."""

    def build(folder: Path):
        task, engine = mcq_prompts(tiny_llama, 8)
        prompts = [engine.prompt(task.messages(ex)) for ex in task.examples()]
        overfit(tiny_llama, folder, prompts, f"<think>{REASONING}</think>{ANSWER}")

    return cached(tmp_path_factory, "answering", build)


def mcq_prompts(model_dir: Path, limit: int):
    """(the first `limit` mmlu_medical items as a task, an engine on model_dir to render their prompts)."""
    from medtune.evaluation.tasks import load_task
    from medtune.inference.engine import Engine

    return load_task("mmlu_medical", str(EVAL_DIR), limit=limit), Engine.load(model=str(model_dir))


def overfit(base: Path, out: Path, prompts: list[str], completion: str, steps: int = 70) -> Path:
    """Copy `base` and train it (loss on the completion only) until it answers `prompts` with `completion`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    ids, labels = [], []
    for prompt in prompts:
        p = tok(prompt, add_special_tokens=False)["input_ids"]
        c = tok(completion + "<|end|>", add_special_tokens=False)["input_ids"]
        ids.append(p + c)
        labels.append([-100] * len(p) + c)
    batch = {"input_ids": _pad(ids, tok.pad_token_id), "labels": _pad(labels, -100),
             "attention_mask": _pad([[1] * len(r) for r in ids], 0)}
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 140k-parameter model trains faster on one thread of a busy machine
    try:
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            model(**batch).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    shutil.copytree(base, out)
    model.save_pretrained(out)
    return out


def _pad(rows: list[list[int]], value: int):
    import torch

    width = max(map(len, rows))
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def make_adapter_run(model_dir: Path, run_dir: Path, scale: float = 0.5) -> Path:
    """The inference tests' adapter run (config.yaml + perturbed LoRA adapter), pointed at the shared eval data."""
    from inference_helpers import make_run

    from medtune import config

    make_run(model_dir, run_dir, scale)
    cfg = config.load(run_dir / "config.yaml")
    cfg.eval.data_dir = str(EVAL_DIR)
    cfg.save(run_dir / "config.yaml")
    return run_dir


OPEN_REFERENCES = [ANSWER, ANSWER, "Lidocaine blocks voltage-gated sodium channels.",
                   "Warfarin is reversed with vitamin K and prothrombin complex concentrate."]


def open_task_file(path: Path) -> Path:
    """Four open-ended items (prepared chat rows) whose questions are the answering model's training prompts."""
    import json

    from medtune.evaluation.tasks import load_task

    task = load_task("mmlu_medical", str(EVAL_DIR), limit=len(OPEN_REFERENCES))
    with path.open("w") as fh:
        for i, (ex, reference) in enumerate(zip(task.examples(), OPEN_REFERENCES)):
            messages = [{"role": "user", "content": task.messages(ex)[-1].content},
                        {"role": "assistant", "content": reference}]
            fh.write(json.dumps({"id": f"open-{i}", "messages": messages}) + "\n")
    return path
