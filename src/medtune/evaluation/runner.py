"""One system (an inference engine) on a list of tasks -> one record per item, in the layout of items.jsonl.

Multiple choice runs by log-likelihood or by batched generation and answer parsing; open-ended tasks are
generated, then scored by embedding similarity. The judge runs afterwards, over every system at once.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from medtune.config import Config
from medtune.evaluation.loglik import score_mcq
from medtune.evaluation.similarity import similarities


@contextmanager
def progress_bar(total: int, desc: str, per_item: float = 1.0):
    """A tqdm bar counted in whole items (shows items/s); the caller reports its own units, `per_item` of them
    making one item (e.g. the options of a question in loglik mode)."""
    from tqdm.auto import tqdm

    done, lock = [0.0, 0], threading.Lock()  # units reported, items shown; judge threads report concurrently
    with tqdm(total=total, desc=desc, unit="item", dynamic_ncols=True) as bar:
        def update(units: float) -> None:
            with lock:
                done[0] += units
                items = min(total, int(done[0] / per_item + 1e-9))
                bar.update(items - done[1])
                done[1] = items

        yield update


def run_task(engine, task, cfg: Config, label: str, embedder=None) -> tuple[list[dict], float]:
    """(item records, seconds) for one task."""
    start = time.perf_counter()
    if task.kind == "mcq" and cfg.eval.mode == "loglik":
        records = _loglik_records(engine, task, cfg, label)
    else:
        records = _generated_records(engine, task, cfg, label)
    if task.kind == "open":
        _add_similarity(records, embedder)
    return records, time.perf_counter() - start


def _loglik_records(engine, task, cfg: Config, label: str) -> list[dict]:
    items = task.examples()
    n_requests = sum(len(ex.options) for ex in items)
    with progress_bar(len(items), f"{label} {task.name} loglik", n_requests / max(1, len(items))) as update:
        verdicts = score_mcq(engine.model, engine.tokenizer, task, cfg.eval.mcq_format, cfg.eval.batch_size, update)
    return [_base_record(label, task, ex) | {
        "prompt": v["prompt"], "reasoning": None, "answer": None, "prediction": v["prediction"],
        "prediction_norm": v["prediction_norm"], "correct": v["correct"], "correct_norm": v["correct_norm"],
        "parsed": True, "scores": {"logliks": v["logliks"]}} for ex, v in zip(items, verdicts)]


def _generated_records(engine, task, cfg: Config, label: str) -> list[dict]:
    items = task.examples()
    generations = generate(engine, [task.messages(ex) for ex in items], cfg, f"{label} {task.name} generate")
    records = []
    for ex, gen in zip(items, generations):
        record = _base_record(label, task, ex) | _generation_fields(engine, gen)
        if task.kind == "mcq":
            record |= task.score(ex, gen.answer)
        else:
            record |= {"gold": ex.reference, "question": ex.question}
        records.append(record)
    return records


def generate(engine, conversations: list, cfg: Config, desc: str) -> list:
    """Batched generation with a progress bar; prompts of similar length share a batch (less padding)."""
    from medtune.inference.engine import SamplingParams

    params = SamplingParams(max_tokens=cfg.eval.max_tokens, temperature=cfg.eval.temperature, seed=cfg.seed)
    order = sorted(range(len(conversations)), key=lambda i: -len(engine.encode(engine.prompt(conversations[i]))))
    out: list = [None] * len(conversations)
    size = max(1, cfg.eval.batch_size)
    with progress_bar(len(order), desc) as update:
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            for i, gen in zip(chunk, engine.generate([conversations[i] for i in chunk], params, size)):
                out[i] = gen
            update(len(chunk))
    return out


def _base_record(label: str, task, ex) -> dict:
    gold = getattr(ex, "answer", None)
    return {"system": label, "task": task.name, "id": ex.id, "source": ex.source, "gold": gold}


def _generation_fields(engine, gen) -> dict:
    """What the model wrote, and whether it kept the format: reasoning present and closed, then an answer."""
    reasoning = gen.reasoning or ""
    tokens = len(engine.tokenizer.encode(reasoning, add_special_tokens=False)) if reasoning else 0
    return {"prompt": gen.prompt, "reasoning": gen.reasoning, "answer": gen.answer,
            "finish_reason": gen.finish_reason, "reasoning_tokens": tokens,
            "generated_tokens": gen.stats.generated_tokens,
            "format_ok": bool(reasoning.strip()) and gen.reasoning_finished and bool(gen.answer.strip()),
            "scores": {}}


def _add_similarity(records: list[dict], embedder) -> None:
    if embedder is None:
        return
    scores = similarities(embedder, [r["answer"] for r in records], [r["gold"] for r in records])
    for record, score in zip(records, scores):
        record["scores"]["similarity"] = round(score, 6)
