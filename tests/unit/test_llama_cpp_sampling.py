"""The llama.cpp engine picks tokens by transformers' rules (inference/llama_cpp_sampling.py): its repetition penalty,
temperature, top-k and top-p give the scores transformers' own processors give, the greedy choice is the argmax of
the penalized logits, and draws follow the warped distribution."""

import numpy as np
import pytest
import torch
from transformers.generation.logits_process import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from medtune.inference.llama_cpp_sampling import Sampling, choose, log_softmax, penalize, warp
from medtune.inference.params import SamplingParams

VOCAB = 300


def logits(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(0, 3, VOCAB).astype(np.float32)


def seen(ids) -> np.ndarray:
    mask = np.zeros(VOCAB, dtype=bool)
    mask[list(ids)] = True
    return mask


def transformers_scores(scores: np.ndarray, ids: list[int], s: Sampling) -> np.ndarray:
    x, input_ids = torch.tensor(scores)[None], torch.tensor([ids])
    x = RepetitionPenaltyLogitsProcessor(s.repetition_penalty)(input_ids, x)
    if not s.greedy:
        x = TemperatureLogitsWarper(s.temperature)(input_ids, x)
        if s.top_k:
            x = TopKLogitsWarper(s.top_k)(input_ids, x)
        if s.top_p < 1:
            x = TopPLogitsWarper(s.top_p)(input_ids, x)
    return x[0].numpy()


@pytest.mark.parametrize("s", [
    Sampling(True, repetition_penalty=1.15),
    Sampling(False, 0.7, 0.9, 0, 1.0),
    Sampling(False, 1.3, 1.0, 20, 1.1),
    Sampling(False, 0.5, 0.5, 40, 1.15),
])
def test_the_scores_are_transformers_own(s):
    ids = [3, 7, 7, 42, 199, 5]  # the prompt and the answer so far (a repeated id is penalized once)
    raw = logits()
    ours = penalize(raw, seen(ids), s.repetition_penalty)
    ours = ours if s.greedy else warp(ours, s)
    theirs = transformers_scores(raw, ids, s)
    assert np.array_equal(np.isinf(ours), np.isinf(theirs))
    finite = np.isfinite(ours)
    assert np.allclose(ours[finite], theirs[finite], rtol=1e-6, atol=1e-6)


def test_greedy_is_the_argmax_after_the_penalty_and_changes_with_it():
    raw = np.zeros(VOCAB, dtype=np.float32)
    raw[[10, 11]] = [2.0, 1.9]
    assert choose(raw, seen([]), Sampling(True, repetition_penalty=1.15)) == 10
    assert choose(raw, seen([10]), Sampling(True, repetition_penalty=1.15)) == 11  # 2.0 / 1.15 < 1.9
    assert choose(raw, seen([10]), Sampling(True)) == 10  # penalty 1: off


def test_draws_follow_the_warped_distribution_and_repeat_with_the_seed():
    raw = logits(1)
    s = Sampling(False, 0.8, 0.9, 50, 1.0, seed=7)
    rng = np.random.default_rng(7)
    draws = [choose(raw, seen([]), s, rng) for _ in range(4000)]
    allowed = np.isfinite(warp(raw, s))
    assert all(allowed[d] for d in draws)
    probs = np.exp(warp(raw, s) - warp(raw, s)[allowed].max())
    probs /= probs.sum()
    top = int(np.argmax(probs))
    assert abs(draws.count(top) / len(draws) - probs[top]) < 0.03
    again = np.random.default_rng(7)
    assert [choose(raw, seen([]), s, again) for _ in range(50)] == draws[:50]


def test_sampling_of_params_keeps_only_what_touches_the_logits():
    assert Sampling.of(SamplingParams(temperature=0.0, repetition_penalty=1.15, top_k=5), 9) == \
        Sampling(True, repetition_penalty=1.15)  # greedy: top-k, top-p and the seed draw nothing
    assert Sampling.of(SamplingParams(temperature=0.7, top_p=0.9, top_k=5), 9) == Sampling(False, 0.7, 0.9, 5, 1.0, 9)


def test_log_softmax_is_torchs():
    rows = np.stack([logits(2), logits(3)])
    assert np.allclose(log_softmax(rows), torch.log_softmax(torch.tensor(rows), -1).numpy(), atol=1e-5)


def test_a_request_without_a_seed_takes_the_next_of_the_engines_seeded_stream():
    sampled, seeded = SamplingParams(temperature=0.7), SamplingParams(temperature=0.7, seed=2**64 + 5)
    first = [Sampling.for_request(sampled, np.random.default_rng(3)).seed for _ in range(2)]
    stream = np.random.default_rng(3)
    again = [Sampling.for_request(sampled, stream).seed for _ in range(2)]
    assert first[0] == again[0] and again[0] != again[1]  # the same stream repeats; each request its own seed
    assert Sampling.for_request(seeded, stream).seed == 5  # a request's own seed, within the child's range
    assert Sampling.for_request(SamplingParams(temperature=0.0), stream).greedy
