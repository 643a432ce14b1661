"""How the llama.cpp engine picks each token from llama.cpp's logits: transformers' rules, in numpy.

llama.cpp's own samplers differ from what medtune's default engine does with the same settings: its repetition
penalty looks at the last 64 generated tokens only (transformers': every token of the prompt and the answer), and
its sampler chain adds min_p 0.05 and typical-p. The quickstart generates greedily with repetition_penalty 1.15, so
with llama.cpp's penalty the same settings would give other greedy tokens. So llama.cpp computes the logits and
this module applies transformers' processors in transformers' order (RepetitionPenaltyLogitsProcessor,
TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper), then takes the argmax or draws one token.

Pure numpy, no llama_cpp and no torch: it runs in the llama.cpp child process (inference/llama_cpp_worker.py) and
is unit-tested against transformers' own processors (tests/unit/test_llama_cpp_sampling.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SEED_SPACE = 2**64  # the draws' seeds, as the llama.cpp child takes them


@dataclass(frozen=True)
class Sampling:
    """The knobs of SamplingParams that touch the logits, as the child process gets them."""

    greedy: bool
    temperature: float = 1.0
    top_p: float = 1.0  # 1 = off
    top_k: int = 0  # 0 = off
    repetition_penalty: float = 1.0  # 1 = off
    seed: int = 0  # the draws' seed (unused when greedy): 0 <= seed < 2**64

    @classmethod
    def of(cls, params, seed: int) -> Sampling:
        """From medtune's SamplingParams; `seed` seeds the draws of a sampled request."""
        if params.greedy:
            return cls(True, repetition_penalty=params.repetition_penalty)
        return cls(False, params.temperature, params.top_p, params.top_k, params.repetition_penalty, seed)

    @classmethod
    def for_request(cls, params, stream: np.random.Generator) -> Sampling:
        """A request's settings on an engine that picks tokens itself (llama.cpp, mlx): a sampled request without
        a seed takes the next seed of the engine's stream (seeded from the config), so a sampled run repeats."""
        if params.greedy:
            return cls.of(params, 0)
        return cls.of(params, params.seed % SEED_SPACE if params.seed is not None
                      else int(stream.integers(SEED_SPACE >> 1)))


def penalize(logits: np.ndarray, seen: np.ndarray, penalty: float) -> np.ndarray:
    """transformers' repetition penalty on every token id seen so far (prompt and answer): a positive logit is
    divided by the penalty, a negative one multiplied."""
    if penalty == 1.0 or not seen.any():
        return logits
    out = logits.copy()
    picked = out[seen]
    out[seen] = np.where(picked < 0, picked * penalty, picked / penalty)
    return out


def warp(logits: np.ndarray, s: Sampling) -> np.ndarray:
    """Temperature, then top-k, then top-p, as transformers' warpers (min_tokens_to_keep 1); removed tokens get -inf."""
    out = logits / s.temperature if s.temperature != 1.0 else logits.copy()
    if s.top_k > 0:
        k = min(s.top_k, out.size)
        kth = np.partition(out, -k)[-k]
        out[out < kth] = -np.inf  # ties with the k-th logit stay, as in transformers
    if s.top_p < 1.0:
        order = np.argsort(out, kind="stable")  # ascending, as transformers sorts
        cumulative = np.cumsum(softmax(out[order]))
        drop = cumulative <= 1 - s.top_p
        drop[-1] = False  # the likeliest token always stays
        out[order[drop]] = -np.inf
    return out


def choose(logits: np.ndarray, seen: np.ndarray, s: Sampling, rng: np.random.Generator | None = None) -> int:
    """The next token: the argmax of the penalized logits, or a draw from the warped distribution."""
    scores = penalize(np.asarray(logits, dtype=np.float32), seen, s.repetition_penalty)
    if s.greedy:
        return int(np.argmax(scores))  # the first of equal maxima, as torch.argmax
    probs = softmax(warp(scores, s).astype(np.float64))
    cumulative = np.cumsum(probs)
    draw = (rng or np.random.default_rng(s.seed)).random() * cumulative[-1]
    return int(min(np.searchsorted(cumulative, draw, side="right"), probs.size - 1))


def softmax(x: np.ndarray) -> np.ndarray:
    finite = x[np.isfinite(x)]
    e = np.exp(x - (finite.max() if finite.size else 0.0))
    return e / e.sum()


def log_softmax(rows: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32, as the default engine's log-likelihood scoring computes it."""
    rows = np.asarray(rows, dtype=np.float32)
    shifted = rows - rows.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
