"""Generation in MLX (`--engine mlx`, and `--engine auto` on Apple silicon with mlx-lm installed), with medtune's
prompts, stop tokens, reasoning split, sampling rules and safety layer unchanged.

    engine = MlxLoader(to_mlx).load(run="runs/quickstart", safety=layer)   # commands/args.py binds to_mlx
    engine.generate([[Message("user", q)]], params); engine.stream(...); engine.run([engine.request(...)])

As with llama.cpp (llama_cpp_engine.py), a default Engine built without weights renders and tokenizes the prompt,
splits stops and screens the request and the answer; mlx-lm's model gets those token ids. Each token is picked
from the model's logits by transformers' rules (llama_cpp_sampling.choose: repetition penalty, temperature,
top-k, top-p), so a greedy answer is the default engine's up to float numerics, and it goes through the default
engine's own Row (stops, streamed text, the answer gate, cancellation). Several requests at once (eval, a
batch of prompts, the server's queue) run together in mlx-lm's BatchGenerator (continuous batching, one KV cache
per sequence), medtune's choice of token made in a logits processor per request; a single request is decoded
alone with mlx-lm's KV cache. A seeded sample draws from numpy's generator (other tokens than transformers').

The adapter: a run trained with training.backend mlx has mlx-lm's own adapter in adapter/mlx; a PEFT adapter is
converted (export/mlx.py, bound by commands/args.py: inference/ does not import export/) into a temporary folder.
"""

from __future__ import annotations

import importlib.util
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from medtune.config import Config
from medtune.errors import MedtuneError
from medtune.inference import weights
from medtune.inference.engine import Engine, Generation, Request, Stats
from medtune.inference.llama_cpp_sampling import Sampling, choose
from medtune.inference.prompt_engine import PromptFront, Scorer, prompt_engine

INSTALL = "pip install 'medtune[mlx]'"
MLX_ADAPTER = "mlx"  # training.backend mlx writes mlx-lm's adapter here, inside adapter/


def require_mlx() -> None:
    if importlib.util.find_spec("mlx") is None or importlib.util.find_spec("mlx_lm") is None:
        raise MedtuneError(f"--engine mlx needs mlx-lm, which is not installed here: {INSTALL}")


@dataclass(frozen=True)
class MlxLoader:
    """What the verbs call .load(...) on, with Engine.load's arguments and the PEFT -> mlx-lm converter bound."""

    to_mlx: Callable[[Path, Path, int], object]  # export.mlx.peft_to_mlx(adapter, out, num_blocks)
    engine_name: ClassVar[str] = "mlx"

    def load(self, model: str | None = None, adapter: str | None = None, run: str | None = None,
             **kwargs) -> MlxEngine:
        return MlxEngine.load(model, adapter, run, to_mlx=self.to_mlx, **kwargs)


class MlxEngine(PromptFront):
    """Engine's interface (PromptFront), generating with mlx-lm's model: several requests as one batch, one alone
    with its KV cache."""

    engine_name: ClassVar[str] = "mlx"

    def __init__(self, model, prompts: Engine, seed: int = 0):
        self.mlx_model, self.prompts, self.name = model, prompts, prompts.name
        self.model = Scorer(self)  # what log-likelihood scoring reads (evaluation/loglik.py)
        self._rng = np.random.default_rng(seed)  # seeds of sampled requests without one of their own
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, adapter: str | None = None, run: str | None = None, *,
             config: Config | None = None, system_prompt: str | None = None, template: str | None = None,
             extra_eos_tokens: Sequence[str] = (), safety=None,
             to_mlx: Callable[[Path, Path, int], object] | None = None) -> MlxEngine:
        require_mlx()
        from mlx_lm.utils import load

        from medtune.models.load import local_model_folder

        source = weights.resolve(config or weights.config_beside(model, adapter, run), adapter, run)
        prompts = prompt_engine(source, system_prompt, template, extra_eos_tokens, safety)
        base = local_model_folder(source.config.model)
        loaded, _ = load(base, adapter_path=_mlx_adapter(source, base, to_mlx))
        return cls(loaded, prompts, source.config.seed)

    # ------------------------------------------------------------ running

    def run(self, requests: list[Request]) -> list[Generation]:
        """The requests' Generations in order (any mix of sampling settings); several run as one mlx-lm batch,
        each row handed to on_finish as it ends."""
        live = [r for r in requests if not (r.verdict is not None and r.verdict.blocked) and not r.cancel.is_set()]
        if len(live) < 2:
            return self.in_turn(requests, self._generate)
        with self._lock:  # the server's scheduler and streams share the engine
            done = self._batched(live)
        return [done[id(r)] if id(r) in done else self.in_turn([r], self._generate)[0] for r in requests]

    def _batched(self, requests: list[Request]) -> dict[int, Generation]:
        """The requests decoded together by mlx-lm's BatchGenerator; each token goes through the request's Row,
        and a row that finishes (a stop, a stop string, cancellation, max_tokens) leaves the batch."""
        from mlx_lm.generate import BatchGenerator

        rows = [self.prompts.new_row(r) for r in requests]
        choosers = [Chooser(self.sampling(r.params), r.prompt_ids) for r in requests]
        batch = BatchGenerator(self.mlx_model, max_tokens=max(r.max_tokens for r in requests))
        start, first = time.perf_counter(), {}
        try:
            uids = batch.insert([list(r.prompt_ids) for r in requests], max_tokens=[r.max_tokens for r in requests],
                                logits_processors=[[c] for c in choosers])
            index, out = {uid: i for i, uid in enumerate(uids)}, {}
            while len(out) < len(requests):
                for response in batch.next_generated():
                    i = index[response.uid]
                    if i in out:
                        continue
                    first.setdefault(i, time.perf_counter() - start)
                    if rows[i].step(response.token) or response.finish_reason is not None:
                        if response.finish_reason is None:
                            batch.remove([response.uid])
                        out[i] = self._finish(requests[i], rows[i], start, first.get(i), len(requests))
        finally:
            batch.close()
        return {id(requests[i]): gen for i, gen in out.items()}

    def _finish(self, request: Request, row, start: float, first: float | None, size: int) -> Generation:
        stats = Stats(len(request.prompt_ids), row.count, time.perf_counter() - start, first, _peak_mb(), size)
        gen = self.prompts.finished(request, row, stats)
        if request.on_finish is not None:
            request.on_finish(gen)
        return gen

    def _generate(self, request: Request, stop_ids: set[int], on_token) -> float:
        for token in self._tokens(request, stop_ids):
            if on_token(token):
                break
        return _peak_mb()

    def _tokens(self, request: Request, stop_ids: set[int]):
        """The next tokens, each picked from the logits by transformers' rules, until max_tokens or a stop id."""
        import mlx.core as mx
        from mlx_lm.models.cache import make_prompt_cache

        chooser = Chooser(self.sampling(request.params), request.prompt_ids)
        cache = make_prompt_cache(self.mlx_model)
        logits = self.mlx_model(mx.array([list(request.prompt_ids)]), cache=cache)[0, -1]
        for _ in range(request.max_tokens):
            token = chooser.pick(logits)
            yield token
            if token in stop_ids:
                return
            logits = self.mlx_model(mx.array([[token]]), cache=cache)[0, -1]

    def tail_logprobs(self, inputs: list[tuple], tails: list[int]) -> list:
        """Log-softmax over the vocabulary at the last `tail` positions of each input, each input on its own."""
        import mlx.core as mx
        import torch

        out = []
        with self._lock:
            for ids, tail in zip(inputs, tails):
                logits = self.mlx_model(mx.array([list(ids)]))[0, len(ids) - tail:].astype(mx.float32)
                out.append(torch.from_numpy(np.array(logits - mx.logsumexp(logits, axis=-1, keepdims=True))))
        return out

    def sampling(self, params) -> Sampling:
        """A sampled request without a seed gets the next of the engine's seeded stream (the config's seed)."""
        return Sampling.for_request(params, self._rng)


class Chooser:
    """mlx-lm's logits processor for one request: picks the next token from the raw logits by transformers' rules
    (llama_cpp_sampling.choose, over the prompt and the tokens chosen so far) and leaves only it possible, so
    that the batch's greedy sampler takes it."""

    def __init__(self, sampling: Sampling, prompt_ids):
        self.sampling, self.seen = sampling, list(prompt_ids)
        self.rng = None if sampling.greedy else np.random.default_rng(sampling.seed)

    def pick(self, logits) -> int:
        """The next token from one position's logits (an mlx vector); it joins the tokens seen."""
        import mlx.core as mx

        token = choose(np.array(logits.astype(mx.float32)), np.array(self.seen), self.sampling, self.rng)
        self.seen.append(token)
        return token

    def __call__(self, _context, logits):
        import mlx.core as mx

        token = self.pick(logits[0])
        only = mx.full(logits.shape, -mx.inf, dtype=logits.dtype)
        only[:, token] = 0.0
        return only


def _mlx_adapter(source: weights.Source, base: str, to_mlx) -> str | None:
    """mlx-lm's adapter folder for the source: the one a training.backend mlx run wrote beside its PEFT adapter,
    else the PEFT adapter converted into a temporary folder."""
    if source.adapter is None:
        return None
    own = source.adapter / MLX_ADAPTER
    if (own / "adapters.safetensors").is_file():
        return str(own)
    if to_mlx is None:
        raise MedtuneError(f"{source.adapter}: a PEFT adapter needs converting for mlx (commands/args.py binds it)")
    import json

    blocks = json.loads((Path(base) / "config.json").read_text())["num_hidden_layers"]
    out = Path(tempfile.mkdtemp(prefix="medtune-mlx-")) / "adapter"
    to_mlx(source.adapter, out, blocks)
    return str(out)


def _peak_mb() -> float:
    import mlx.core as mx

    return mx.get_peak_memory() / 2**20
