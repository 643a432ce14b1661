"""The loss mask token by token on a real tokenizer and its own chat template: SmolLM2-135M-Instruct's (ChatML, with
a default system prompt the template adds itself, BOS <|im_start|> never added by the tokenizer, pad == eos ==
<|im_end|>). Only assistant text and each assistant turn's end (<|im_end|> and the newline ChatML puts after it) are
trained; system and user text and every <|im_start|>role header are not."""

import pytest
from transformers import AutoTokenizer

from medtune.data.records import Message, Record
from medtune.data.templates import render
from medtune.data.tokenize import encode_batch

SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"  # the template's default
END = "<|im_end|>\n"


@pytest.fixture(scope="module")
def tok(smollm2):
    return AutoTokenizer.from_pretrained(smollm2)


def encode(tok, record, **kw):
    rendered = render(record, tok, **kw)
    [enc] = encode_batch([rendered], tok)
    assert tok.decode(enc.input_ids) == rendered.text  # one tokenization of the whole text, nothing added
    return rendered, enc


def runs(tok, enc, value=1):
    """The decoded runs of consecutive tokens whose mask is `value`."""
    out, current = [], []
    for token, m in zip(enc.input_ids, enc.mask):
        if m == value:
            current.append(token)
        elif current:
            out.append(tok.decode(current))
            current = []
    return out + ([tok.decode(current)] if current else [])


def roles_by_token(tok, enc):
    """For every token, the role of the ChatML turn it sits in, and whether it is part of that turn's
    '<|im_start|>role\\n' header."""
    start, end, newline = tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>", "Ċ"])
    roles, role, in_header = [], None, False
    for i, token in enumerate(enc.input_ids):
        if token == start:  # the role may be several tokens ("ass", "istant"): the header ends at its newline
            header_end = enc.input_ids.index(newline, i)
            role, in_header = tok.decode(enc.input_ids[i + 1: header_end]), True
        roles.append((role, in_header, token == end))
        if token == newline:
            in_header = False
    return roles


def check_token_by_token(tok, enc):
    """Header tokens untrained; inside an assistant turn everything after the header is trained (through its
    <|im_end|> and the newline after it); nothing in a system or user turn is."""
    newline = tok.convert_tokens_to_ids("Ċ")
    previous_end_trained = False
    for i, ((role, in_header, is_end), m) in enumerate(zip(roles_by_token(tok, enc), enc.mask)):
        if in_header:
            assert m == 0, f"token {i} ({tok.decode(enc.input_ids[i])!r}) of a {role} header is trained"
        elif enc.input_ids[i] == newline and i and enc.input_ids[i - 1] == tok.eos_token_id:
            assert m == previous_end_trained, f"newline after <|im_end|> at {i}"
        else:
            assert m == (role == "assistant"), f"token {i} ({tok.decode(enc.input_ids[i])!r}) in a {role} turn"
        if is_end:
            previous_end_trained = bool(m)


def test_the_tokenizer_is_smollm2s_own(tok):
    assert tok.is_fast and tok.bos_token == "<|im_start|>" and tok.eos_token == tok.pad_token == "<|im_end|>"
    assert tok("Hello")["input_ids"] == tok("Hello", add_special_tokens=False)["input_ids"]  # no BOS added
    assert tok.chat_template.startswith("{% for message in messages %}") and SMOL_SYSTEM in tok.chat_template
    assert tok.convert_tokens_to_ids(["<|im_start|>", "<|im_end|>"]) == [1, 2]


def test_single_turn_with_reasoning(tok):
    rec = Record([Message("user", "Why is she anemic?"),
                  Message("assistant", "Iron deficiency.", reasoning="Low ferritin, microcytic cells.")])
    rendered, enc = encode(tok, rec)
    check_token_by_token(tok, enc)
    assert runs(tok, enc) == [f"<think>Low ferritin, microcytic cells.</think>Iron deficiency.{END}"]
    assert runs(tok, enc, 0) == [f"<|im_start|>system\n{SMOL_SYSTEM}{END}<|im_start|>user\nWhy is she anemic?{END}"
                                 "<|im_start|>assistant\n"]
    assert enc.input_ids[0] == tok.bos_token_id and enc.input_ids[1] != tok.bos_token_id  # BOS once: the template's
    assert tok.decode(enc.input_ids[enc.answer_token:]).startswith("Iron deficiency.")
    assert enc.mask[-2:] == [1, 1] and tok.decode(enc.input_ids[-2:]) == END


def test_reasoning_left_out_trains_the_answer_only(tok):
    rec = Record([Message("user", "Why?"), Message("assistant", "Iron deficiency.", reasoning="Low ferritin.")])
    _, enc = encode(tok, rec, keep_reasoning=False)
    check_token_by_token(tok, enc)
    assert runs(tok, enc) == [f"Iron deficiency.{END}"]


@pytest.mark.parametrize("where", ["record", "config"])
def test_a_system_prompt_replaces_the_templates_own_and_is_not_trained(tok, where):
    system = "You are a careful medical assistant."
    turns = [Message("user", "Dose of amoxicillin?"), Message("assistant", "500 mg every 8 hours.", reasoning="Adult.")]
    rec = Record([Message("system", system), *turns]) if where == "record" else Record(turns)
    _, enc = encode(tok, rec, system_prompt=system if where == "config" else None)
    check_token_by_token(tok, enc)
    assert runs(tok, enc) == [f"<think>Adult.</think>500 mg every 8 hours.{END}"]
    [untrained] = runs(tok, enc, 0)
    assert untrained == (f"<|im_start|>system\n{system}{END}<|im_start|>user\nDose of amoxicillin?{END}"
                         "<|im_start|>assistant\n")
    assert SMOL_SYSTEM not in untrained


def test_multi_turn_trains_both_assistant_turns_and_their_ends_only(tok):
    rec = Record([Message("user", "First question?"), Message("assistant", "First answer.", reasoning="One."),
                  Message("user", "Second question?"), Message("assistant", "Second answer.", reasoning="Two.")])
    rendered, enc = encode(tok, rec)
    check_token_by_token(tok, enc)
    assert len(rendered.spans) == 2
    assert runs(tok, enc) == [f"<think>One.</think>First answer.{END}", f"<think>Two.</think>Second answer.{END}"]
    assert runs(tok, enc, 0) == [
        f"<|im_start|>system\n{SMOL_SYSTEM}{END}<|im_start|>user\nFirst question?{END}<|im_start|>assistant\n",
        f"<|im_start|>user\nSecond question?{END}<|im_start|>assistant\n"]
    ends = [m for t, m in zip(enc.input_ids, enc.mask) if t == tok.eos_token_id]
    assert ends == [0, 0, 1, 0, 1]  # system, user, assistant, user, assistant
    assert tok.decode(enc.input_ids[enc.answer_token:]).startswith("Second answer.")


def test_an_answer_starting_with_newlines_keeps_its_text_trained(tok):
    """ChatML's header ends in a newline, and the answer's first newline merges with it into one token ('ĊĊ'); that
    token starts before the answer, so it stays untrained (the header is never a target) and every later token of
    the answer is trained."""
    rec = Record([Message("user", "List them."), Message("assistant", "\n\n1. Iron\n2. B12")])
    _, enc = encode(tok, rec)
    assert runs(tok, enc) == [f"\n1. Iron\n2. B12{END}"]
    assert runs(tok, enc, 0)[0].endswith("<|im_start|>assistant\n\n")
