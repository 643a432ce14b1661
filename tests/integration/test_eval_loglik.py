"""Log-likelihood scoring on a tiny model against a hand computation, one option at a time, on 5 real items."""


import pytest
import torch

from fixture_data import EVAL_DIR
from medtune.evaluation.loglik import encode_pair, loglikelihoods, score_mcq
from medtune.evaluation.tasks import load_task


@pytest.fixture(scope="module")
def model_and_tokenizer(tiny_llama):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(tiny_llama).eval(), AutoTokenizer.from_pretrained(tiny_llama)


def by_hand(model, tokenizer, context: str, continuation: str) -> float:
    """Sum of log p(token | everything before it) over the continuation's tokens, one unbatched forward pass."""
    ids = tokenizer.encode(context + continuation)
    n_ctx = len(tokenizer.encode(context.rstrip()))
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), dim=-1)
    return sum(logp[t - 1, ids[t]].item() for t in range(n_ctx, len(ids)))


@pytest.mark.parametrize("fmt", ["letters", "cloze"])
def test_accuracy_matches_a_hand_computation_on_five_items(model_and_tokenizer, fmt):
    model, tokenizer = model_and_tokenizer
    task = load_task("medqa", str(EVAL_DIR), limit=5)
    verdicts = score_mcq(model, tokenizer, task, fmt, batch_size=3)
    correct = correct_norm = 0
    for ex, verdict in zip(task.examples(), verdicts):
        requests = task.loglik_requests(ex, fmt)
        lls = [by_hand(model, tokenizer, ctx, cont) for ctx, cont in requests]
        assert verdict["logliks"] == pytest.approx(lls, abs=1e-4)
        letters = list(ex.options)
        best = letters[max(range(len(lls)), key=lambda i: lls[i])]
        per_char = [ll / len(c) for ll, c in zip(lls, task.choices(ex, fmt))]
        best_norm = letters[max(range(len(lls)), key=lambda i: per_char[i])]
        assert (verdict["prediction"], verdict["prediction_norm"]) == (best, best_norm)
        correct += best == ex.answer
        correct_norm += best_norm == ex.answer
    assert sum(v["correct"] for v in verdicts) == correct
    assert sum(v["correct_norm"] for v in verdicts) == correct_norm
    if fmt == "letters":  # one-character choices: acc_norm is acc
        assert [v["prediction"] for v in verdicts] == [v["prediction_norm"] for v in verdicts]


def test_trailing_space_moves_into_the_continuation(model_and_tokenizer):
    _, tokenizer = model_and_tokenizer
    assert encode_pair(tokenizer, "Answer: ", "B") == encode_pair(tokenizer, "Answer:", " B")


def test_batching_and_shared_inputs_do_not_change_scores(model_and_tokenizer):
    model, tokenizer = model_and_tokenizer
    requests = [("Question: fever and rash?\nAnswer:", f" {x}") for x in ("A", "B", "measles", "scarlet fever")]
    requests.append(("Short one:", " yes"))
    one_by_one = [loglikelihoods(model, tokenizer, [r], batch_size=1)[0] for r in requests]
    batched = loglikelihoods(model, tokenizer, requests, batch_size=8)
    assert [ll for ll, _ in batched] == pytest.approx([ll for ll, _ in one_by_one], abs=1e-4)
    assert [g for _, g in batched] == [g for _, g in one_by_one]


def test_long_items_are_truncated_from_the_left(model_and_tokenizer):
    """lm-eval's rule: keep the last max_length + 1 tokens of context + continuation, score the continuation."""
    model, tokenizer = model_and_tokenizer
    context = "Question: " + "word " * 6000 + "\nAnswer:"
    (ll, _), = loglikelihoods(model, tokenizer, [(context, " A")], batch_size=1)
    ctx, cont = encode_pair(tokenizer, context, " A")
    limit = model.config.max_position_embeddings
    window = (ctx + cont)[-(limit + 1):]
    assert len(ctx + cont) > limit + 1  # the context really is cut
    with torch.no_grad():
        logp = torch.log_softmax(model(torch.tensor([window[:-1]])).logits[0].float(), dim=-1)
    n = len(window) - 1
    expected = sum(logp[n - len(cont) + k, cont[k]].item() for k in range(len(cont)))
    assert ll == pytest.approx(expected, abs=1e-3)
