"""How a comparison loads each input's model: the load timed on its own, then one short untimed answer before the
evaluation's clock starts.

Without the warm-up the first input evaluated pays the process's one-time start-up inside its first task (CUDA
context and kernel set-up, lazily loaded modules, the safety classifier's first call) and looks slower than the
same model evaluated second.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from medtune.evaluation.runner import WARM_UP

WARM_UP_TOKENS = 4  # a few decoding steps: the prompt pass and the per-token step each run once


@dataclass
class TimedLoader:
    """Passed to medtune.evaluation as its engine_cls: load() has Engine.load's arguments and returns its engine.
    An evaluation of one system loads once, so load_s and warm_up_s are that system's."""

    engine_cls: type | None = None  # what loads the weights (default Engine)
    load_s: float | None = None
    warm_up_s: float | None = None

    def load(self, **kwargs):
        from medtune.inference.engine import Engine

        start = time.perf_counter()
        engine = (self.engine_cls or Engine).load(**kwargs)
        self.load_s = time.perf_counter() - start
        start = time.perf_counter()
        warm_up(engine)
        self.warm_up_s = time.perf_counter() - start
        return engine


def warm_up(engine) -> None:
    """One short greedy answer on the whole path (the safety layer screens it too), thrown away. The evaluation
    reseeds before every batch, so its answers are the same with or without this."""
    from medtune.inference.params import SamplingParams

    params = SamplingParams(max_tokens=WARM_UP_TOKENS, temperature=0.0)
    engine.run([engine.request([{"role": "user", "content": WARM_UP}], params)])
