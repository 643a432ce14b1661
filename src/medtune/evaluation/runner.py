"""What every task kind's running shares: progress bars, the untimed warm-up, batched generation (prompts too long
for the model recorded, not fatal) and timing. The kinds (tasks/) build their records on top of it."""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager

from medtune.config import Config
from medtune.errors import MedtuneError

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


def timed(work) -> tuple:
    """(work(), seconds it took)."""
    start = time.perf_counter()
    return work(), time.perf_counter() - start


def warm_up(engine) -> None:
    """One short greedy answer on the whole path (the safety layer screens it too), thrown away, before any task
    is timed: CUDA set-up, lazily loaded modules and the classifier's first call fall here. Generation reseeds
    before every batch, so the answers that follow are the same with or without it."""
    from medtune.inference.engine import SamplingParams

    params = SamplingParams(max_tokens=WARM_UP_TOKENS, temperature=0.0)
    engine.run([engine.request([{"role": "user", "content": WARM_UP}], params)])


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
