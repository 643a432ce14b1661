"""Multiple choice by log-likelihood, computed the way lm-evaluation-harness computes it (HFLM, causal models).

For each (context, continuation) pair: trailing spaces of the context move into the continuation, the whole
text is encoded and the continuation is what follows the context's tokens; the score is the sum of the
continuation tokens' log-probabilities (left-truncated to the model's context length). An item's prediction
is the argmax of those sums (acc) and of the sums divided by each choice's character length (acc_norm).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from medtune.errors import DataError

DEFAULT_MAX_LENGTH = 2048  # lm-eval's fallback when neither the config nor the tokenizer gives a length


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) as lm-eval's _encode_pair makes them for causal models."""
    spaces = len(context) - len(context.rstrip())
    if spaces:  # " A" tokenises as one word-initial token only when the space travels with it
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    whole = _encode(tokenizer, context + continuation)
    ctx = _encode(tokenizer, context)
    return ctx, whole[len(ctx):]


def _encode(tokenizer, text: str) -> list[int]:
    # the tokenizer's own special tokens (Llama's BOS), unless the text already starts with BOS, as in lm-eval
    bos = tokenizer.bos_token
    return tokenizer.encode(text, add_special_tokens=not (bos and text.startswith(bos)))


def max_length(model, tokenizer) -> int:
    """The context length lm-eval assumes: the model config's, else the tokenizer's, else 2048."""
    config = getattr(model.config, "text_config", None) or model.config
    for attr in ("n_positions", "max_position_embeddings", "n_ctx"):
        if getattr(config, attr, None):
            return int(getattr(config, attr))
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if limit and limit < 1e29 else DEFAULT_MAX_LENGTH


def loglikelihoods(model, tokenizer, requests: list[tuple[str, str]], batch_size: int = 8,
                   progress: Callable[[int], None] | None = None) -> list[tuple[float, bool]]:
    """(sum of continuation log-probs, whether greedy decoding would produce the continuation) per request."""
    encoded = [encode_pair(tokenizer, ctx, cont) for ctx, cont in requests]
    limit = max_length(model, tokenizer)
    groups: dict[tuple, list[int]] = {}
    for i, (ctx, cont) in enumerate(encoded):
        if not cont:
            raise DataError(f"request {i}: continuation {requests[i][1]!r} encodes to no tokens")
        # identical model inputs run once: all letters of one question share a single forward pass
        groups.setdefault(tuple((ctx + cont)[-(limit + 1):][:-1]), []).append(i)
    keys = sorted(groups, key=lambda k: (-len(k), k))  # longest first, as lm-eval: little padding, OOM at once
    results: list = [None] * len(requests)
    for start in range(0, len(keys), max(1, batch_size)):
        batch = keys[start:start + batch_size]
        tails = [max(len(encoded[i][1]) for i in groups[key]) for key in batch]
        for key, logprobs in zip(batch, _forward(model, batch, tails)):
            for i in groups[key]:
                results[i] = _continuation_score(logprobs, encoded[i][1])
            if progress:
                progress(len(groups[key]))
    return results


def _forward(model, inputs: list[tuple], tails: list[int]) -> list:
    """Log-softmax over the vocabulary at the last `tail` positions of each input (all a continuation needs),
    the inputs right-padded into one batch. An engine that computes outside torch (the llama.cpp engine's
    engine.model) gives them itself."""
    if hasattr(model, "tail_logprobs"):
        return model.tail_logprobs(inputs, tails)
    import torch

    width = max(len(x) for x in inputs)
    ids = torch.zeros((len(inputs), width), dtype=torch.long)
    for row, x in enumerate(inputs):
        ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
    # right padding needs no attention mask in a causal model (pads come after every scored position); lm-eval
    # passes none either, so the numbers match it
    with torch.inference_mode():
        logits = model(ids.to(model.device)).logits
    # only the scored positions go to float32: a 200k vocabulary times every position would not fit
    return [torch.log_softmax(logits[row, len(x) - tail: len(x)].float(), dim=-1).cpu()
            for row, (x, tail) in enumerate(zip(inputs, tails))]


def _continuation_score(tail_logprobs, cont: list[int]) -> tuple[float, bool]:
    import torch

    scored = tail_logprobs[-len(cont):]
    target = torch.tensor(cont, dtype=torch.long)
    ll = scored.gather(-1, target[:, None]).sum().item()
    return ll, bool((scored.argmax(-1) == target).all())


def mcq_verdict(options: dict, gold: str, choices: list[str], lls: list[float]) -> dict:
    """lm-eval's multiple-choice metrics for one item: argmax of log-likelihoods, and of them per character."""
    letters = list(options)
    lls_arr = np.array(lls, dtype=np.float64)
    pred = letters[int(np.argmax(lls_arr))]  # numpy argmax: the first of equal scores, as in lm-eval
    pred_norm = letters[int(np.argmax(lls_arr / np.array([float(len(c)) for c in choices])))]
    return {"prediction": pred, "prediction_norm": pred_norm, "correct": pred == gold,
            "correct_norm": pred_norm == gold, "parsed": True, "logliks": [round(x, 6) for x in lls]}


def score_mcq(model, tokenizer, task, fmt: str = "letters", batch_size: int = 8,
              progress: Callable[[int], None] | None = None) -> list[dict]:
    """One verdict per item of an MCQTask: prediction, gold, acc/acc_norm correctness, option log-likelihoods."""
    items = task.examples()
    per_item = [task.loglik_requests(ex, fmt) for ex in items]
    flat = [r for reqs in per_item for r in reqs]
    results = loglikelihoods(model, tokenizer, flat, batch_size, progress)
    verdicts, pos = [], 0
    for ex, reqs in zip(items, per_item):
        lls = [ll for ll, _ in results[pos: pos + len(reqs)]]
        pos += len(reqs)
        verdict = mcq_verdict(ex.options, ex.answer, task.choices(ex, fmt), lls)
        verdicts.append({"prompt": reqs[0][0], **verdict})
    return verdicts
