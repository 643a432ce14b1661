"""One system (an inference engine) on a list of tasks -> one record per item, in the layout of items.jsonl.

Multiple choice runs by log-likelihood or by batched generation and answer parsing; open-ended tasks are
generated, then scored by embedding similarity. The judge runs afterwards, over every system at once. Safety
tasks are screened by the layer alone (screen mode: no model) or generated with the layer off and screened here
(safety_records.py), so the model's own refusals and the layer's are both measured. Generated answers are scored
without the layer's disclaimer (Generation.plain_answer).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from medtune.config import Config
from medtune.errors import MedtuneError
from medtune.evaluation import safety_records
from medtune.evaluation.loglik import score_mcq
from medtune.evaluation.similarity import similarities

WARM_UP = "What is a normal resting heart rate?"  # screened once, untimed, before a task's rows
WARM_UP_TOKENS = 4  # a few decoding steps: the prompt pass and the per-token step each run once


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
        "prompt": v["prompt"], "prediction": v["prediction"], "prediction_norm": v["prediction_norm"],
        "correct": v["correct"], "correct_norm": v["correct_norm"], "parsed": True,
        "scores": {"logliks": v["logliks"]}} for ex, v in zip(items, verdicts)]


def warm_up(engine) -> None:
    """One short greedy answer on the whole path (the safety layer screens it too), thrown away, before any task
    is timed: CUDA set-up, lazily loaded modules and the classifier's first call fall here. Generation reseeds
    before every batch, so the answers that follow are the same with or without it."""
    from medtune.inference.engine import SamplingParams

    params = SamplingParams(max_tokens=WARM_UP_TOKENS, temperature=0.0)
    engine.run([engine.request([{"role": "user", "content": WARM_UP}], params)])


def screen_task(layer, task, label: str) -> tuple[list[dict], float]:
    """Screen mode: (item records, seconds) of the safety layer alone on a safety task; no model runs."""
    start = time.perf_counter()
    layer.screen_request(WARM_UP)  # the classifier's first call sets torch up: not a request's latency
    records = []
    with progress_bar(len(task.examples()), f"{task.name} screen") as update:
        for ex in task.examples():
            records.append(_base_record(label, task, ex) | safety_records.screened(layer, ex.prompt))
            update(1)
    return records, time.perf_counter() - start


def _generated_records(engine, task, cfg: Config, label: str) -> list[dict]:
    items = task.examples()
    conversations = [task.messages(ex) for ex in items]
    safety = task.kind == "safety"  # generated with the layer off: the layer is applied below, per row
    generations = generate(engine, conversations, cfg, f"{label} {task.name} generate", screen=not safety)
    own_texts = (cfg.safety.refusal, cfg.safety.emergency_message)
    records = []
    for ex, conversation, gen in zip(items, conversations, generations):
        record = _base_record(label, task, ex)
        if isinstance(gen, str):  # the prompt could not run: recorded, counted wrong (MCQ), counted apart
            record |= _failed_fields(engine, conversation, gen, task.kind)
        else:
            record |= _generation_fields(engine, gen)
            record |= _mcq_score(task, ex, gen) if task.kind == "mcq" else {}
        if safety:
            record |= safety_records.whole_path(engine.safety, ex.prompt, gen, own_texts)
        records.append(record)
    return records


def generate(engine, conversations: list, cfg: Config, desc: str, screen: bool = True) -> list:
    """Batched generation with a progress bar; prompts of similar length share a batch (less padding). A prompt
    too long for the model's context gets the engine's message (a str) instead of a Generation. screen=False
    leaves the engine's safety layer out (the safety tasks apply it themselves)."""
    from medtune.inference.engine import SamplingParams

    g = cfg.generation  # eval's own budget and temperature; the rest of the run's generation settings
    params = SamplingParams(max_tokens=cfg.eval.max_tokens, temperature=cfg.eval.temperature, top_p=g.top_p,
                            top_k=g.top_k, repetition_penalty=g.repetition_penalty, seed=cfg.seed).check()
    out: list = [None] * len(conversations)
    requests = {}
    for i, conversation in enumerate(conversations):
        try:
            requests[i] = engine.request(conversation, params, screen=screen)
        except MedtuneError as e:
            if not _too_long(engine, conversation):
                raise
            out[i] = str(e)
    order = sorted(requests, key=lambda i: -len(requests[i].prompt_ids))
    size = cfg.eval.batch_size
    with progress_bar(len(conversations), desc) as update:
        update(len(conversations) - len(order))
        for start in range(0, len(order), size):
            chunk = order[start:start + size]
            for i, gen in zip(chunk, engine.run([requests[i] for i in chunk])):
                out[i] = gen
            update(len(chunk))
    return out


def _too_long(engine, conversation) -> bool:
    return bool(engine.context_length) and len(engine.prompt_ids(conversation)) >= engine.context_length


def _base_record(label: str, task, ex) -> dict:
    """The keys every line of items.jsonl has, whatever the task and mode (None where they do not apply)."""
    gold = ex.reference if task.kind == "open" else ex.answer
    record = {"system": label, "task": task.name, "id": ex.id, "source": ex.source, "question": ex.question,
              "gold": gold, "prompt": None, "reasoning": None, "answer": None, "prediction": None, "correct": None,
              "parsed": None, "error": None, "scores": {}}
    if task.kind == "safety":
        record |= {"label": ex.label, "category": ex.category, "meta": ex.meta}
    return record


def _generation_fields(engine, gen) -> dict:
    """What the model wrote (without the layer's disclaimer, which `disclaimer` notes), whether it kept the format
    (reasoning present and closed, then an answer), and why the layer replaced it (`safety`, None: it did not)."""
    reasoning, answer = gen.reasoning or "", gen.plain_answer
    tokens = len(engine.tokenizer.encode(reasoning, add_special_tokens=False)) if reasoning else 0
    return {"prompt": gen.prompt, "reasoning": gen.reasoning, "answer": answer,
            "finish_reason": gen.finish_reason, "reasoning_tokens": tokens,
            "generated_tokens": gen.stats.generated_tokens,
            "format_ok": bool(reasoning.strip()) and gen.reasoning_finished and bool(answer.strip()),
            "safety": gen.safety.to_dict() if gen.safety is not None else None, "disclaimer": bool(gen.disclaimer)}


def _mcq_score(task, ex, gen) -> dict:
    """The model's answer scored; an answer the safety layer replaced is wrong, whatever option its own text reads
    as (the emergency advice names "the nearest emergency department" and "poison control")."""
    if gen.safety is not None:
        return {"prediction": None, "parsed": False, "correct": False}
    return task.score(ex, gen.plain_answer)


def _failed_fields(engine, conversation, error: str, kind: str) -> dict:
    """An item that never ran: no answer, wrong when it is multiple choice, its reason kept in `error`."""
    return {"prompt": engine.prompt(conversation), "correct": False if kind == "mcq" else None,
            "error": f"too long: {error}", "finish_reason": None, "reasoning_tokens": 0, "generated_tokens": 0,
            "format_ok": None, "safety": None, "disclaimer": None}


def _add_similarity(records: list[dict], embedder) -> None:
    if embedder is None:
        return
    answers = [r["answer"] or "" for r in records]  # an item that never ran has no answer: it scores 0
    scores = similarities(embedder, answers, [r["gold"] for r in records])
    for record, score in zip(records, scores):
        record["scores"]["similarity"] = round(score, 6)
