"""Records -> text, with the character spans the model is trained on (the assistant turns).

Default: the tokenizer's own chat template. Named templates exist only for tokenizers without one and for
reproducing known recipes. Masking is done on character spans, so it is exact for any template.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medtune.data.records import THINK_CLOSE, THINK_OPEN, Message, Record, assistant_text
from medtune.errors import DataError

NAMED_TEMPLATES = ("phi-think", "r1-cot", "alpaca")

ALPACA_PREAMBLE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
)
R1_PREAMBLE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request. Before answering, think carefully about the "
    "question and create a step-by-step chain of thoughts to ensure a logical and accurate response."
)
R1_INSTRUCTION = (
    "You are a medical expert with advanced knowledge in clinical reasoning, diagnostics, and treatment planning. "
    "Please answer the following medical question."
)
R1_ANSWER_HEADER = "\n\n### Answer:\n"


TEXT_ROWS_ADVICE = "prepare with data.output_format=chat (the default) or completions to train on the answers only"
TEXT_ROWS_NOTE = ("records in the text layout ({text: ...}) have no prompt/answer boundary: the loss covers every "
                  f"token, a prompt inside the text included; {TEXT_ROWS_ADVICE}")


@dataclass
class Rendered:
    text: str
    spans: list[tuple[int, int]]  # character spans that are trained on (assistant turns)
    answer_start: int  # where the final answer (after </think>) begins: truncation past it loses the answer
    notes: list[str] = field(default_factory=list)  # e.g. "system prompt merged into the user turn"


def with_system(record: Record, system_prompt: str | None) -> list[Message]:
    """The record's messages, with the configured system prompt in front when the record has none."""
    if system_prompt and record.system is None:
        return [Message("system", system_prompt), *record.messages]
    return list(record.messages)


def render(
    record: Record, tokenizer, template: str = "auto", system_prompt: str | None = None, keep_reasoning: bool = True
) -> Rendered:
    """One training example as text plus its trained spans."""
    if "text" in record.meta and not record.messages:  # plain-text corpora train on every character
        text = record.meta["text"]
        return Rendered(text, [(0, len(text))], answer_start=0, notes=[TEXT_ROWS_NOTE])
    messages = with_system(record, system_prompt)
    if not any(m.role == "assistant" for m in messages):
        raise DataError(f"{record.source}: record has no assistant turn to train on")
    messages, notes = _through_last_answer(messages)
    if template == "auto":
        out = _render_chat_template(messages, tokenizer, keep_reasoning, record.source)
        return Rendered(out.text, out.spans, out.answer_start, [*notes, *out.notes])
    if template not in NAMED_TEMPLATES:
        raise DataError(f"unknown template {template!r}; use auto or one of {', '.join(NAMED_TEMPLATES)}")
    prompt = render_prompt(messages[:-1], tokenizer, template, source=record.source, keep_reasoning=keep_reasoning)
    completion = _named_completion(template, messages[-1], tokenizer, keep_reasoning)
    text = prompt + completion
    return Rendered(text, [(len(prompt), len(text))], _answer_start(text, len(prompt), messages[-1], keep_reasoning),
                    notes)


TRAILING_NOTE = "turns after a record's last assistant turn have no answer to train on: they were left out"


def _through_last_answer(messages: list[Message]) -> tuple[list[Message], list[str]]:
    """The conversation up to its last assistant turn: a trailing user turn is never trained, so it is dropped."""
    last = _last_answer(messages)
    return (messages, []) if last == len(messages) - 1 else (messages[: last + 1], [TRAILING_NOTE])


def _last_answer(messages: list[Message]) -> int:
    return max(i for i, m in enumerate(messages) if m.role == "assistant")


def render_prompt(messages: list[Message], tokenizer, template: str = "auto", source: str = "prompt",
                  keep_reasoning: bool = True) -> str:
    """The text a model continues from: every message so far, then the start of the assistant's turn."""
    if template == "auto":
        return _apply(tokenizer, messages, True, keep_reasoning, source)[0]
    system = next((m.content for m in messages if m.role == "system"), None)
    turns = [m for m in messages if m.role != "system"]
    if template == "phi-think":
        return _phi_prompt(system, turns, keep_reasoning)
    if template not in NAMED_TEMPLATES:
        raise DataError(f"unknown template {template!r}; use auto or one of {', '.join(NAMED_TEMPLATES)}")
    if len(turns) != 1 or turns[0].role != "user":
        raise DataError(f"{source}: template {template} takes single-turn records (one question, one answer); "
                        f"this one has {len(turns)} turns: use template auto or phi-think")
    if template == "alpaca":
        return f"{system or ALPACA_PREAMBLE}\n\n### Instruction:\n{turns[0].content}\n\n### Response:\n"
    return (f"{R1_PREAMBLE}\n\n### Instruction:\n{system or R1_INSTRUCTION}\n\n### Query:\n{turns[0].content}"
            f"\n\n### Chain of Thought:\n")


def _phi_prompt(system: str | None, turns: list[Message], keep_reasoning: bool = True) -> str:
    parts = [f"<|system|>{system}<|end|>"] if system else []
    for m in turns:
        if m.role == "user":
            parts.append(f"<|user|>{m.content}<|end|>")
        else:
            parts.append(f"<|assistant|>{assistant_text(m, keep_reasoning)}<|end|>")
    return "".join(parts) + "<|assistant|>"


def _named_completion(template: str, final: Message, tokenizer, keep_reasoning: bool) -> str:
    eos = tokenizer.eos_token or ""
    if template == "phi-think":
        return f"{assistant_text(final, keep_reasoning)}<|end|>{eos}"
    if template == "alpaca":
        return f"{assistant_text(final, keep_reasoning)}{eos}"
    reasoning = final.reasoning if keep_reasoning and final.reasoning else ""
    return f"{THINK_OPEN}{reasoning}{THINK_CLOSE}{R1_ANSWER_HEADER}{final.content}{eos}"


def _answer_start(text: str, completion_start: int, final: Message, keep_reasoning: bool) -> int:
    """Character offset of the final answer: after the last </think> of the completion, if reasoning is kept."""
    if keep_reasoning and final.reasoning:
        close = text.rfind(THINK_CLOSE, completion_start)
        if close >= 0:
            return close + len(THINK_CLOSE)
    return completion_start


# ---------------------------------------------------------------- the tokenizer's own chat template


def _as_dicts(messages: list[Message], keep_reasoning: bool = True) -> list[dict]:
    return [
        {"role": m.role, "content": assistant_text(m, keep_reasoning) if m.role == "assistant" else m.content}
        for m in messages
    ]


def _apply(tokenizer, messages: list[Message], add_generation_prompt: bool, keep_reasoning: bool = True,
           source: str = "prompt"):
    """apply_chat_template as text; templates that reject a system role get it merged into the first user turn."""
    if getattr(tokenizer, "chat_template", None) is None:
        raise DataError(
            f"tokenizer {getattr(tokenizer, 'name_or_path', '')!r} has no chat template: "
            f"set data.template to one of {', '.join(NAMED_TEMPLATES)}"
        )
    dicts = _as_dicts(messages, keep_reasoning)
    try:
        return tokenizer.apply_chat_template(dicts, tokenize=False, add_generation_prompt=add_generation_prompt), []
    except Exception as error:  # jinja raise_exception(...) surfaces as a TemplateError
        if not dicts or dicts[0]["role"] != "system" or len(dicts) < 2:
            raise _rejected(source, messages, error) from None
    merged = [{"role": dicts[1]["role"], "content": f"{dicts[0]['content']}\n\n{dicts[1]['content']}"}, *dicts[2:]]
    try:
        text = tokenizer.apply_chat_template(merged, tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as error:  # e.g. Mistral's "roles must alternate": the merge cannot help, so say why
        raise _rejected(source, messages, error) from None
    return text, ["the chat template takes no system role: system prompt merged into the first user turn"]


def _rejected(source: str, messages: list[Message], error: Exception) -> DataError:
    """One line naming the record, its roles and the template's own complaint (jinja messages may span lines)."""
    roles = ", ".join(m.role for m in messages)
    return DataError(f"{source}: the chat template rejected the conversation (roles {roles}): "
                     f"{' '.join(str(error).split())}")


def _render_chat_template(messages: list[Message], tokenizer, keep_reasoning: bool,
                          source: str = "record") -> Rendered:
    """Locate each assistant turn by rendering the conversation up to it with and without that turn."""
    full, notes = _apply(tokenizer, messages, False, keep_reasoning, source)
    spans, answer_start = [], 0
    for i, m in enumerate(messages):
        if m.role != "assistant":
            continue
        prefix, _ = _apply(tokenizer, messages[:i], True, keep_reasoning, source)
        upto, _ = _apply(tokenizer, messages[: i + 1], False, keep_reasoning, source)
        end = _turn_end(upto, full, tokenizer)
        body = assistant_text(m, keep_reasoning)
        if not (full.startswith(prefix) and body in full[len(prefix):end]):
            return _render_fallback(messages, tokenizer, keep_reasoning, notes, source)
        spans.append((len(prefix), end))
        answer_start = full.index(body, len(prefix)) + len(body) - len(m.content)
    return Rendered(full, spans, answer_start, notes)


def _turn_end(upto: str, full: str, tokenizer) -> int:
    """Where a turn ends inside the full conversation: the common prefix of the conversation rendered up to the
    turn and the full one, backed off so it never splits a special token (closing '</s>' vs next '<|user|>')."""
    end = _common_prefix_length(upto, full)
    for token in tokenizer.all_special_tokens + [str(t) for t in tokenizer.get_added_vocab()]:
        start = full.find(token, max(0, end - len(token) + 1), end + len(token))
        if 0 <= start < end < start + len(token):
            end = start
    return end


def _common_prefix_length(a: str, b: str) -> int:
    """Binary search with C-speed slice comparisons (os.path.commonprefix walks characters in Python)."""
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a[:mid] == b[:mid]:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _render_fallback(messages: list[Message], tokenizer, keep_reasoning: bool, notes: list[str],
                     source: str = "record") -> Rendered:
    """For templates that rewrite the assistant turn (e.g. DeepSeek-R1's, which strips <think> blocks):
    the template renders the prompt, and the last assistant turn is appended verbatim so the reasoning is not
    silently lost; any turn after it is left out (it has no answer, and user text is never trained)."""
    last = _last_answer(messages)
    final = messages[last]
    prompt, _ = _apply(tokenizer, messages[:last], True, keep_reasoning, source)
    body = assistant_text(final, keep_reasoning)
    if prompt.rstrip().endswith(THINK_OPEN) and body.startswith(THINK_OPEN):
        body = body[len(THINK_OPEN):]  # the generation prompt already opened the think block
    text = prompt + body + (tokenizer.eos_token or "")
    note = "the chat template rewrites assistant turns: only the final turn is trained, appended verbatim"
    dropped = [TRAILING_NOTE] if last < len(messages) - 1 else []
    return Rendered(text, [(len(prompt), len(text))], _answer_start(text, len(prompt), final, keep_reasoning),
                    [*notes, note, *dropped])
