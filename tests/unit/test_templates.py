"""Templates: exact rendered strings and the trained character spans, for every named template and the
tokenizer's own chat template (including templates that rewrite or reject parts of the conversation)."""

import pytest

from medtune.data.records import Message, Record
from medtune.data.templates import R1_INSTRUCTION, R1_PREAMBLE, render, render_prompt
from medtune.errors import DataError

Q, R, A = "What causes anemia?", "Think of iron.", "Low iron."


def record(system=None, turns=None):
    msgs = [Message("system", system)] if system else []
    msgs += turns or [Message("user", Q), Message("assistant", A, reasoning=R)]
    return Record(msgs, source="test.jsonl:1")


def trained(rendered):
    return [rendered.text[a:b] for a, b in rendered.spans]


def test_phi_think_exact(tokenizer):
    out = render(record(), tokenizer, "phi-think")
    assert out.text == f"<|user|>{Q}<|end|><|assistant|><think>{R}</think>{A}<|end|></s>"
    assert trained(out) == [f"<think>{R}</think>{A}<|end|></s>"]
    assert out.text[out.answer_start:] == f"{A}<|end|></s>"


def test_phi_think_system_prompt(tokenizer):
    out = render(record(), tokenizer, "phi-think", system_prompt="Be careful.")
    assert out.text.startswith("<|system|>Be careful.<|end|><|user|>")


def test_record_system_wins_over_config(tokenizer):
    out = render(record(system="Own."), tokenizer, "phi-think", system_prompt="Config.")
    assert out.text.startswith("<|system|>Own.<|end|>") and "Config." not in out.text


def test_r1_cot_exact(tokenizer):
    out = render(record(), tokenizer, "r1-cot")
    prompt = f"{R1_PREAMBLE}\n\n### Instruction:\n{R1_INSTRUCTION}\n\n### Query:\n{Q}\n\n### Chain of Thought:\n"
    assert out.text == prompt + f"<think>{R}</think>\n\n### Answer:\n{A}</s>"
    assert trained(out) == [f"<think>{R}</think>\n\n### Answer:\n{A}</s>"]
    assert render(record(), tokenizer, "r1-cot", system_prompt="Sys.").text.count("### Instruction:\nSys.") == 1


def test_alpaca_exact(tokenizer):
    out = render(record(), tokenizer, "alpaca")
    assert out.text == (
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
        f"\n\n### Instruction:\n{Q}\n\n### Response:\n<think>{R}</think>{A}</s>"
    )
    assert render(record(), tokenizer, "alpaca", system_prompt="Sys.").text.startswith("Sys.\n\n### Instruction:")


def test_reasoning_drop(tokenizer):
    out = render(record(), tokenizer, "phi-think", keep_reasoning=False)
    assert out.text == f"<|user|>{Q}<|end|><|assistant|>{A}<|end|></s>"
    assert R not in render(record(), tokenizer, "auto", keep_reasoning=False).text


@pytest.mark.parametrize("template", ["phi-think", "auto"])
def test_reasoning_drop_covers_earlier_turns(tokenizer, template):
    turns = [Message("user", "Hi"), Message("assistant", "Hello", reasoning="greet back"),
             Message("user", Q), Message("assistant", A, reasoning=R)]
    out = render(record(turns=turns), tokenizer, template, keep_reasoning=False)
    assert "greet back" not in out.text and R not in out.text and "<think>" not in out.text


def test_auto_uses_tokenizer_chat_template(tokenizer):
    out = render(record(), tokenizer, "auto", system_prompt="Be careful.")
    expected = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Be careful."}, {"role": "user", "content": Q},
         {"role": "assistant", "content": f"<think>{R}</think>{A}"}], tokenize=False)
    assert out.text == expected
    assert trained(out) == [f"<think>{R}</think>{A}<|end|></s>"]
    assert out.notes == []


def test_auto_multi_turn_trains_every_assistant_turn(tokenizer):
    turns = [Message("user", "Hi?"), Message("assistant", "Hello.", reasoning="greet"),
             Message("user", Q), Message("assistant", A, reasoning=R)]
    out = render(record(turns=turns), tokenizer, "auto")
    assert trained(out) == ["<think>greet</think>Hello.<|end|>", f"<think>{R}</think>{A}<|end|></s>"]
    assert all("<|user|>" not in t for t in trained(out))


def test_template_that_strips_reasoning_falls_back(tokenizer_copy):
    # DeepSeek-R1's template drops everything up to </think> from assistant turns: training on it would
    # silently lose the chain of thought. medtune appends the turn verbatim instead, and says so.
    tok = tokenizer_copy
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'assistant' %}"
        "{{ '<|assistant|>' + m['content'].split('</think>')[-1] + '<|end|>' }}"
        "{% else %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|assistant|><think>' }}{% endif %}"
    )
    out = render(record(), tok, "auto")
    assert out.text == f"<|user|>{Q}<|end|><|assistant|><think>{R}</think>{A}</s>"
    assert trained(out) == [f"{R}</think>{A}</s>"]
    assert any("rewrites assistant turns" in n for n in out.notes)


def test_template_rejecting_system_role_merges_it(tokenizer_copy):
    tok = tokenizer_copy
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('no system role') }}{% endif %}"
        "{{ '[' + m['role'] + ']' + m['content'] }}{% endfor %}{% if add_generation_prompt %}[assistant]{% endif %}"
    )
    out = render(record(), tok, "auto", system_prompt="Be careful.")
    assert out.text.startswith(f"[user]Be careful.\n\n{Q}[assistant]")
    assert any("merged into the first user turn" in n for n in out.notes)


def test_render_prompt_ends_at_assistant_turn(tokenizer):
    msgs = [Message("user", Q)]
    assert render_prompt(msgs, tokenizer, "phi-think") == f"<|user|>{Q}<|end|><|assistant|>"
    assert render_prompt(msgs, tokenizer, "auto") == f"<|user|>{Q}<|end|><|assistant|>"
    assert render_prompt(msgs, tokenizer, "r1-cot").endswith(f"### Query:\n{Q}\n\n### Chain of Thought:\n")


def test_errors(tokenizer, tokenizer_copy):
    turns = [Message("user", "a"), Message("assistant", "b"), Message("user", "c"), Message("assistant", "d")]
    with pytest.raises(DataError, match="test.jsonl:1: template alpaca takes single-turn records"):
        render(record(turns=turns), tokenizer, "alpaca")
    with pytest.raises(DataError, match="no assistant turn"):
        render(record(turns=[Message("user", "a")]), tokenizer, "auto")
    with pytest.raises(DataError, match="unknown template 'chatml'"):
        render(record(), tokenizer, "chatml")
    tokenizer_copy.chat_template = None
    with pytest.raises(DataError, match="has no chat template: set data.template"):
        render(record(), tokenizer_copy, "auto")


def test_plain_text_trains_everything(tokenizer):
    out = render(Record([], source="t:1", meta={"text": "plain words"}), tokenizer)
    assert out.text == "plain words" and out.spans == [(0, 11)]


STRIP_THINK = (  # DeepSeek-R1 style: assistant turns lose their think block, so render() takes the fallback path
    "{% for m in messages %}{% if m['role'] == 'assistant' %}"
    "{{ '<|assistant|>' + m['content'].split('</think>')[-1] + '<|end|>' }}"
    "{% else %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|><think>' }}{% endif %}"
)
FOLLOW_UP = "Thanks! Which foods are rich in iron?"


def test_fallback_trains_the_last_assistant_turn_never_a_trailing_user_turn(tokenizer_copy):
    tok = tokenizer_copy
    tok.chat_template = STRIP_THINK
    turns = [Message("user", Q), Message("assistant", A, reasoning=R), Message("user", FOLLOW_UP)]
    out = render(record(turns=turns), tok, "auto")
    assert trained(out) == [f"{R}</think>{A}</s>"]
    assert FOLLOW_UP not in out.text and out.text[out.answer_start:] == f"{A}</s>"
    assert any("after a record's last assistant turn" in n for n in out.notes)
    assert any("rewrites assistant turns" in n for n in out.notes)


@pytest.mark.parametrize("template, want", [("auto", f"<think>{R}</think>{A}<|end|></s>"),
                                            ("phi-think", f"<think>{R}</think>{A}<|end|></s>"),
                                            ("alpaca", f"<think>{R}</think>{A}</s>")])
def test_a_trailing_user_turn_is_dropped_with_a_note_on_every_path(tokenizer, template, want):
    turns = [Message("user", Q), Message("assistant", A, reasoning=R), Message("user", FOLLOW_UP)]
    out = render(record(turns=turns), tokenizer, template)
    assert trained(out) == [want] and FOLLOW_UP not in out.text
    assert any("after a record's last assistant turn" in n for n in out.notes)
    assert render(record(), tokenizer, template).notes == []


MISTRAL_STRICT = (  # Mistral's own checks: no system role, and roles must alternate starting with the user
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('Only user and assistant roles are supported!') }}{% endif %}"
    "{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}"
    "{% if m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}{% else %}{{ m['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)


def test_a_template_rejecting_the_merged_conversation_is_a_one_line_error_naming_the_record(tokenizer_copy):
    tok = tokenizer_copy
    tok.chat_template = MISTRAL_STRICT
    turns = [Message("user", "Hi"), Message("user", Q), Message("assistant", A)]
    rec = Record(turns, source="file.jsonl:3")
    with pytest.raises(DataError) as err:
        render(rec, tok, "auto", system_prompt="Be careful.")  # system refused, then the merged turns too
    message = str(err.value)
    assert message.startswith("file.jsonl:3: the chat template rejected the conversation (roles system, user, user")
    assert "Conversation roles must alternate user/assistant" in message and "\n" not in message
    with pytest.raises(DataError, match=r"^q\.jsonl:7: the chat template rejected .*roles must alternate"):
        render_prompt([Message("system", "S."), Message("user", "a"), Message("user", "b")], tok, source="q.jsonl:7")
    ok = render(Record([Message("user", Q), Message("assistant", A)], source="f:1"), tok, "auto", system_prompt="S.")
    assert ok.text.startswith(f"<s>[INST] S.\n\n{Q} [/INST]")
