"""Loss masks from character spans, the overlong policy, and the length audit."""

import pytest

from medtune.data.records import Message, Record
from medtune.data.templates import Rendered, render
from medtune.data.tokenize import (
    ANSWER_CUT,
    ANSWER_LOST,
    PROMPT_OVERFLOW,
    Encoded,
    apply_overlong,
    encode_batch,
    length_audit,
)
from medtune.errors import DataError


def encode(tokenizer, text, spans, answer_start=None, **kw):
    r = Rendered(text, spans, answer_start if answer_start is not None else spans[-1][0])
    return encode_batch([r], tokenizer, ["t:1"], **kw)[0]


def test_mask_covers_exactly_the_assistant_tokens(tokenizer):
    rec = Record([Message("user", "Why?"), Message("assistant", "Iron.", reasoning="Because")], source="t:1")
    r = render(rec, tokenizer, "phi-think")
    e = encode_batch([r], tokenizer, ["t:1"])[0]
    trained = tokenizer.decode([t for t, m in zip(e.input_ids, e.mask) if m])
    untrained = tokenizer.decode([t for t, m in zip(e.input_ids, e.mask) if not m])
    assert trained == "<think>Because</think>Iron.<|end|></s>"
    assert untrained == "<|user|>Why?<|end|><|assistant|>"
    assert tokenizer.decode(e.input_ids[e.answer_token:]) == "Iron.<|end|></s>"


def test_one_tokenization_of_the_whole_text(tokenizer):
    rec = Record([Message("user", "a b c"), Message("assistant", "the anemia answer")], source="t:1")
    r = render(rec, tokenizer, "alpaca")
    e = encode_batch([r], tokenizer)[0]
    assert e.input_ids == tokenizer(r.text, add_special_tokens=False)["input_ids"]


def test_train_on_prompt_unmasks_everything_before(tokenizer):
    e = encode(tokenizer, "question answer", [(9, 15)], train_on_prompt=True)
    assert all(e.mask)


def test_bos_is_added_when_the_tokenizer_uses_one(tokenizer_copy):
    tok = tokenizer_copy
    tok.add_bos_token = True  # like Llama / Mistral tokenizers
    if tok("a")["input_ids"][:1] != [tok.bos_token_id]:
        pytest.skip("this tokenizer backend does not honour add_bos_token")
    e = encode(tok, "question answer", [(9, 15)])
    assert e.input_ids[0] == tok.bos_token_id and e.mask[0] == 0
    e2 = encode(tok, "<s>question answer", [(12, 18)])
    assert e2.input_ids.count(tok.bos_token_id) == 1  # the template already wrote it


def fake(n_prompt, n_reason, n_answer, source="f:1"):
    mask = [0] * n_prompt + [1] * (n_reason + n_answer)
    return Encoded(list(range(len(mask))), mask, n_prompt + n_reason, source)


@pytest.mark.parametrize(
    "max_length, reason", [(100, None), (58, ANSWER_CUT), (40, ANSWER_LOST), (10, PROMPT_OVERFLOW)]
)
def test_overflow_reasons(max_length, reason):
    assert fake(10, 30, 20).overflow(max_length) == reason


def test_drop_policy_counts_and_never_cuts():
    data = [fake(10, 30, 20, "a"), fake(5, 5, 5, "b")]
    kept, dropped = apply_overlong(data, 40, "drop")
    assert [e.source for e in kept] == ["b"] and dropped["overlong"] == ["a"]


def test_truncate_policy_drops_examples_left_with_no_trained_tokens():
    data = [fake(10, 30, 20, "a"), fake(50, 5, 5, "b")]
    kept, dropped = apply_overlong(data, 40, "truncate")
    assert [e.source for e in kept] == ["a"] and kept[0].length == 40
    assert dropped["no_trained_tokens"] == ["b"]


def test_error_policy_names_the_examples():
    with pytest.raises(DataError, match=r"1 examples exceed model.max_length=40 tokens \(first: a\)"):
        apply_overlong([fake(10, 30, 20, "a"), fake(1, 1, 1, "b")], 40, "error")


def test_length_audit():
    data = [fake(10, 30, 20), fake(10, 5, 5), fake(50, 5, 5), fake(10, 40, 10)]
    a = length_audit(data, 45)
    assert a["examples"] == 4 and a["tokens"]["max"] == 60
    assert a["exceed_max_length"] == 3
    assert a["would_lose_answer"] == {ANSWER_CUT: 1, ANSWER_LOST: 1, PROMPT_OVERFLOW: 1}
    assert a["trained_tokens"] == 50 + 10 + 10 + 50
