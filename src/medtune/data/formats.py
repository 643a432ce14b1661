"""Record layouts: detect which one a dataset uses, and convert its rows into records.Record.

Layouts (keys matched case-insensitively):
  medical_o1            Question, Complex_CoT, Response
  mcq                   question, options {letter: text}, answer (a letter): verifiable, see data/verifiable.py
  verifiable            Open-ended Verifiable Question, Ground-True Answer: verifiable, see data/verifiable.py
  alpaca                instruction, [input], output  (+ optional system, history)
  instruction_response  instruction|question|query|prompt + response|answer|output  (+ optional reasoning, system)
  chat                  messages: [{role, content}]
  sharegpt              conversations: [{from, value}]  (human / gpt / system)
  prompt_completion     prompt, completion  (strings, or TRL's conversational lists of messages)
  text                  text  -> Record(messages=[], meta={"text": ...}): plain text trains on the whole text
  mapped                any keys, named by the `columns` setting: {question, reasoning, answer, system}
An answer that starts with <think>...</think> is split into reasoning and answer.
"""

from __future__ import annotations

from collections import Counter

from medtune.data import verifiable
from medtune.data.records import THINK_CLOSE, THINK_OPEN, Message, Record, split_reasoning
from medtune.errors import DataError

FORMATS = ("medical_o1", "mcq", "verifiable", "alpaca", "instruction_response", "chat", "sharegpt",
           "prompt_completion", "text")
QUESTION_KEYS = ("instruction", "question", "query", "prompt")
ANSWER_KEYS = ("response", "answer", "output")
CONTEXT_KEYS = ("input", "context")  # joined to an instruction/response row's question
REASONING_KEYS = ("reasoning", "complex_cot", "cot", "chain_of_thought", "rationale", "thinking", "think")
COLUMN_ROLES = ("question", "reasoning", "answer", "system")
_ROLE_NAMES = {
    "system": ("system",),
    "user": ("user", "human"),
    "assistant": ("assistant", "gpt", "model", "chatgpt", "bot"),
}
ROLES = {alias: role for role, aliases in _ROLE_NAMES.items() for alias in aliases}
_SAMPLE = 20  # rows looked at to detect a dataset's layout


# ---------------------------------------------------------------- detection


def detect_format(row: dict) -> str:
    """The layout of one row; DataError when its keys match none."""
    keys = {str(k).lower() for k in row}
    if "messages" in keys:
        return "chat"
    if "conversations" in keys:
        return "sharegpt"
    if {"question", "complex_cot", "response"} <= keys:
        return "medical_o1"
    if verifiable.is_mcq(keys, row):  # before instruction_response, which would drop the options
        return "mcq"
    if verifiable.is_open(keys):
        return "verifiable"
    if {"instruction", "output"} <= keys:
        return "alpaca"
    if {"prompt", "completion"} <= keys:
        return "prompt_completion"
    if keys & set(QUESTION_KEYS) and keys & set(ANSWER_KEYS):
        return "instruction_response"
    if "text" in keys:
        return "text"
    raise DataError(
        f"keys {sorted(row)} match no known layout ({', '.join(FORMATS)}); "
        "set data.format, or name your columns with data.columns"
    )


def detect_dataset_format(rows: list) -> str:
    """The most common layout among the first rows; a clear error when none of them matches any layout."""
    found, seen = Counter(), set()
    for _, row in _pairs(rows[:_SAMPLE]):
        seen.update(str(k) for k in row)
        try:
            found[detect_format(row)] += 1
        except DataError:
            continue  # such a row fails later, in conversion, with its own source
    if not found:
        raise DataError(
            f"{_pairs(rows[:1])[0][0] if rows else 'data'}: keys seen {sorted(seen)} match no known layout "
            f"({', '.join(FORMATS)}); set data.format, or map your columns with data.columns"
        )
    return found.most_common(1)[0][0]


def _detect_one(row: dict, source: str) -> str:
    try:
        return detect_format(row)
    except DataError as e:
        raise DataError(f"{source}: {e}") from None


def convert(rows: list, fmt: str = "auto", columns: dict | None = None, bad: list[dict] | None = None) -> list[Record]:
    """Rows (as (source, dict) pairs, or plain dicts) -> records; columns, when given, win over fmt.
    With a `bad` list, a row that cannot be converted is recorded there ({source, error}) instead of stopping."""
    pairs = _pairs(rows)
    if not columns and fmt == "auto":
        fmt = detect_dataset_format(pairs)
    records = []
    for source, row in pairs:
        try:
            records.append(to_record(row, fmt, source, columns))
        except DataError as e:
            if bad is None:
                raise
            bad.append({"source": source, "error": str(e)})
    return records


def _pairs(rows: list) -> list[tuple[str, dict]]:
    return [item if isinstance(item, tuple) else (f"row[{i}]", item) for i, item in enumerate(rows)]


# ---------------------------------------------------------------- conversion


def to_record(row: dict, fmt: str, source: str, columns: dict | None = None) -> Record:
    """One row in layout fmt (or mapped by columns) -> Record."""
    if columns:
        return _Row(row, "mapped", source).mapped(columns)
    if fmt == "auto":
        fmt = _detect_one(row, source)
    if fmt not in _CONVERTERS:
        raise DataError(f"{source}: unknown format {fmt!r}; known: auto, {', '.join(FORMATS)}")
    return verifiable.with_reference_columns(_CONVERTERS[fmt](_Row(row, fmt, source)), row)


class _Row:
    """One raw row with case-insensitive field access; errors name the field, the source and the layout."""

    def __init__(self, row: dict, fmt: str, source: str):
        self.row, self.fmt, self.source = row, fmt, source
        self.keys = {str(k).lower(): k for k in row}

    def error(self, text: str) -> DataError:
        return DataError(f"{self.source}: {text} (format {self.fmt})")

    def raw(self, name: str, required: bool = True):
        key = self.keys.get(name.lower())
        if key is None and required:
            raise self.error(f"missing field '{name}'")
        return None if key is None else self.row[key]

    def text(self, name: str, required: bool = True) -> str:
        """A stripped string field; a required one may be neither missing nor empty."""
        value = _as_text(self.raw(name, required), name, self.error, "should be text")
        if required and not value:
            raise self.error(f"empty field '{name}'")
        return value

    def first(self, names: tuple[str, ...]) -> str:
        """The first of several alias keys that this row has."""
        name = next((n for n in names if n in self.keys), None)
        if name is None:
            raise self.error(f"missing field (one of {', '.join(repr(n) for n in names)})")
        return name

    def answer(self, text: str, name: str, reasoning: str | None = None) -> Message:
        """The assistant turn; without a separate reasoning field, a leading <think> block is split off."""
        found, answer = (None, text) if reasoning else split_reasoning(text)
        if not answer:
            raise self.error(f"empty field '{name}' (nothing after </think>)")
        self.check_tags(answer, name, reasoning)
        return Message("assistant", answer, reasoning or found or None)

    def check_tags(self, answer: str, name: str, reasoning: str | None) -> None:
        """A think tag left in the answer (or in a separate reasoning field) would be trained as text: a second or
        nested <think> block, or one never closed, which teaches the model to ramble on past its reasoning."""
        if reasoning and (THINK_OPEN in reasoning or THINK_CLOSE in reasoning):
            raise self.error("the reasoning field holds a <think> or </think> tag: medtune adds them itself")
        if THINK_OPEN not in answer and THINK_CLOSE not in answer:
            return
        if reasoning:
            raise self.error(f"field '{name}' holds a <think> block while a separate reasoning field gives the "
                             "reasoning: keep one of them")
        problem = "a <think> never closed by </think>" if THINK_CLOSE not in answer else "a stray think tag"
        raise self.error(f"field '{name}' holds {problem} (the reasoning must be one leading "
                         "<think>...</think> block, then the answer)")

    def record(self, messages: list[Message]) -> Record:
        return Record(messages=messages, source=self.source)

    def mapped(self, columns: dict) -> Record:
        unknown = set(columns) - set(COLUMN_ROLES)
        if unknown:
            raise self.error(f"data.columns: unknown role(s) {sorted(unknown)}; valid: {', '.join(COLUMN_ROLES)}")
        question = self.text(columns.get("question") or self.first(QUESTION_KEYS))
        answer_key = columns.get("answer") or self.first(ANSWER_KEYS)
        reasoning_key = columns.get("reasoning") or next((k for k in REASONING_KEYS if k in self.keys), None)
        reasoning = self.text(reasoning_key, required="reasoning" in columns) if reasoning_key else ""
        answer = self.answer(self.text(answer_key), answer_key, reasoning)
        system = self.text(columns["system"], required=False) if columns.get("system") else ""
        return self.record(_system(system) + [Message("user", question), answer])


def _as_text(value, name: str, error, problem: str) -> str:
    """A field's text. A number is refused rather than trained as its digits: in JSON or Parquet it is more
    often a column mix-up (an option index, a score) than an answer, and the user says which by quoting it."""
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise error(f"field '{name}' = {value!r} is a number, not text: write it as a string (\"{value}\") to train "
                    "on it as text")
    if not isinstance(value, str):
        raise error(f"field '{name}' {problem}")
    return value.strip()


def _system(text: str | None) -> list[Message]:
    return [Message("system", text)] if text else []


def _medical_o1(r: _Row) -> Record:
    answer = r.answer(r.text("Response"), "Response", r.text("Complex_CoT"))
    return r.record([Message("user", r.text("Question")), answer])


def _alpaca(r: _Row) -> Record:
    # Some alpaca sets leave instruction empty and put the question in input.
    question = "\n\n".join(t for t in (r.text("instruction", required=False), r.text("input", required=False)) if t)
    if not question:
        missing = r.raw("instruction", required=False) is None and r.raw("input", required=False) is None
        raise r.error("missing field 'instruction'" if missing else "empty field 'instruction'")
    answer = r.answer(r.text("output"), "output")
    return r.record(_system(r.text("system", required=False)) + _history(r) + [Message("user", question), answer])


def _history(r: _Row) -> list[Message]:
    """Alpaca's optional earlier turns: [[question, answer], ...]."""
    history = r.raw("history", required=False) or []
    if not isinstance(history, list) or not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in history):
        raise r.error("field 'history' should be a list of [question, answer] pairs")
    return [m for q, a in history for m in (Message("user", str(q).strip()), r.answer(str(a).strip(), "history"))]


def _instruction_response(r: _Row) -> Record:
    reasoning_key = next((k for k in REASONING_KEYS if k in r.keys), None)
    reasoning = r.text(reasoning_key, required=False) if reasoning_key else ""
    answer_key = r.first(ANSWER_KEYS)
    answer = r.answer(r.text(answer_key), answer_key, reasoning)
    system = _system(r.text("system", required=False))
    # an "input" or "context" beside the question belongs to it (as alpaca's input does): never dropped
    context = [r.text(k, required=False) for k in CONTEXT_KEYS if k in r.keys]
    question = "\n\n".join(t for t in (r.text(r.first(QUESTION_KEYS)), *context) if t)
    return r.record(system + [Message("user", question), answer])


def _chat(r: _Row) -> Record:
    return r.record(_turns(r, "messages", "role", "content"))


def _sharegpt(r: _Row) -> Record:
    return r.record(_system(r.text("system", required=False)) + _turns(r, "conversations", "from", "value"))


def _prompt_completion(r: _Row) -> Record:
    prompt, completion = r.raw("prompt"), r.raw("completion")
    if isinstance(prompt, list) and isinstance(completion, list):  # TRL's conversational prompt-completion
        return r.record(_turns(r, "prompt", "role", "content") + _turns(r, "completion", "role", "content"))
    system = _system(r.text("system", required=False))  # prepare's completions rows carry it here
    return r.record(system + [Message("user", r.text("prompt")), r.answer(r.text("completion"), "completion")])


def _text(r: _Row) -> Record:
    return Record(messages=[], source=r.source, meta={"text": r.text("text")})


def _turns(r: _Row, field: str, role_key: str, content_key: str) -> list[Message]:
    turns = r.raw(field)
    if not isinstance(turns, list) or not turns:
        raise r.error(f"field '{field}' should be a non-empty list of turns")
    messages = [_turn(r, f"{field}[{i}]", turn, role_key, content_key) for i, turn in enumerate(turns)]
    if field in ("messages", "conversations") and not any(m.role == "assistant" for m in messages):
        raise r.error(f"field '{field}' has no assistant turn")
    return messages


def _turn(r: _Row, where: str, turn, role_key: str, content_key: str) -> Message:
    if not isinstance(turn, dict):
        raise r.error(f"field '{where}' should be an object with '{role_key}' and '{content_key}'")
    sub = _Row(turn, r.fmt, r.source)
    role = ROLES.get(sub.text(role_key, required=False).lower())
    if role is None:
        raise r.error(f"field '{where}.{role_key}' = {sub.raw(role_key, False)!r} is not one of {', '.join(ROLES)}")
    content = _content(sub.raw(content_key, required=False), f"{where}.{content_key}", r.error)
    if not content and role != "system":
        raise r.error(f"empty field '{where}.{content_key}'")
    if role != "assistant":
        return Message(role, content)
    # Separate reasoning fields as DeepSeek (reasoning_content) and newer chat templates (thinking) write them.
    reasoning_key = next((k for k in ("reasoning_content", "reasoning", "thinking") if k in sub.keys), None)
    return r.answer(content, f"{where}.{content_key}", sub.text(reasoning_key, False) if reasoning_key else None)


def _content(value, name: str, error) -> str:
    """Turn content as text; a list of parts ([{type: text, text: ...}]) is joined."""
    if isinstance(value, list):
        parts = [p.get("text") for p in value if isinstance(p, dict)]
        if not all(isinstance(p, str) for p in parts) or len(parts) != len(value):
            raise error(f"field '{name}' has bad content")
        return "\n".join(parts).strip()
    return _as_text(value, name, error, "has bad content")


_CONVERTERS = {
    "medical_o1": _medical_o1,
    "mcq": verifiable.mcq_record,
    "verifiable": verifiable.open_record,
    "alpaca": _alpaca,
    "instruction_response": _instruction_response,
    "chat": _chat,
    "sharegpt": _sharegpt,
    "prompt_completion": _prompt_completion,
    "text": _text,
}
