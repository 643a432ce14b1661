"""Benchmarks as tiny objects (nanochat style): `examples()` and `score(example, output)`.

Two kinds of task file:
  multiple choice   {id, question, options: {letter: text}, answer: letter}  (MedQA, MedMCQA, PubMedQA, MMLU)
  open-ended        any layout `prepare` reads (medical-o1, chat rows from prepare's test split, ...): the last
                    assistant turn's answer is the reference for similarity and the judge
Built-in names resolve to <data_dir>/<name>.jsonl; anything else is a file, a folder or a hub dataset id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medtune.data.records import Message
from medtune.data.sources import load_rows, looks_like_hub_id
from medtune.errors import DataError
from medtune.evaluation.extract import extract_letter

BUILTIN = ("medqa", "medmcqa", "pubmedqa", "mmlu_medical")
MCQ_FORMATS = ("letters", "cloze")
GENERATE_INSTRUCTION = (
    "Answer the following multiple-choice question. Think it through step by step, then give the final answer "
    "as 'The answer is X', where X is the letter of the correct option."
)


@dataclass(frozen=True)
class MCQExample:
    id: str
    question: str
    options: dict  # letter -> option text, in file order
    answer: str  # the gold letter
    source: str  # "file:line", for error messages and items.jsonl


@dataclass(frozen=True)
class OpenExample:
    id: str
    messages: tuple  # the conversation up to the answer (system, user, ...), as records.Message
    reference: str  # the reference answer (reasoning removed)
    source: str

    @property
    def question(self) -> str:
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


class MCQTask:
    """A multiple-choice benchmark: lm-eval style log-likelihood requests, or a chat prompt whose answer is parsed."""

    kind = "mcq"

    def __init__(self, name: str, items: list[MCQExample], origin: str):
        self.name, self.items, self.origin = name, items, origin

    def examples(self) -> list[MCQExample]:
        return self.items

    def loglik_requests(self, ex: MCQExample, fmt: str = "letters") -> list[tuple[str, str]]:
        """(context, continuation) per option, as lm-eval builds them: letters lists the options and scores
        ' A', ' B', ...; cloze shows the question alone and scores each option's text."""
        if fmt == "letters":
            listed = "".join(f"{k}. {v}\n" for k, v in ex.options.items())
            return [(f"Question: {ex.question}\n{listed}Answer:", f" {k}") for k in ex.options]
        if fmt == "cloze":
            return [(f"Question: {ex.question}\nAnswer:", f" {v}") for v in ex.options.values()]
        raise DataError(f"eval.mcq_format {fmt!r} is not one of {', '.join(MCQ_FORMATS)}")

    def choices(self, ex: MCQExample, fmt: str = "letters") -> list[str]:
        """The choice strings whose lengths acc_norm divides by (lm-eval: doc_to_choice, without the space)."""
        return list(ex.options) if fmt == "letters" else list(ex.options.values())

    def messages(self, ex: MCQExample, system: str | None = None) -> list[Message]:
        listed = "\n".join(f"{k}. {v}" for k, v in ex.options.items())
        user = f"{GENERATE_INSTRUCTION}\n\nQuestion: {ex.question}\n\nOptions:\n{listed}"
        return [*([Message("system", system)] if system else []), Message("user", user)]

    def score(self, ex: MCQExample, output: str) -> dict:
        """output: the answer part of a generation (after </think>)."""
        letter = extract_letter(output, ex.options)
        return {"prediction": letter, "parsed": letter is not None, "correct": letter == ex.answer}


class OpenTask:
    """Open-ended questions with reference answers; similarity and the judge score whole batches of answers."""

    kind = "open"

    def __init__(self, name: str, items: list[OpenExample], origin: str):
        self.name, self.items, self.origin = name, items, origin

    def examples(self) -> list[OpenExample]:
        return self.items

    def messages(self, ex: OpenExample, system: str | None = None) -> list[Message]:
        has_system = any(m.role == "system" for m in ex.messages)
        return [*([Message("system", system)] if system and not has_system else []), *ex.messages]

    def score(self, ex: OpenExample, output: str) -> dict:
        return {"answered": bool(output.strip())}


def load_task(name_or_path: str, data_dir: str | None = None, limit: int | None = None) -> MCQTask | OpenTask:
    """A built-in name, a file or folder, or a hub dataset id -> its task, holding the first `limit` items."""
    where = resolve(name_or_path, data_dir)
    rows, _ = load_rows(where, hub_split="test")
    name = name_or_path if name_or_path in BUILTIN else Path(name_or_path).stem or name_or_path
    if limit is not None and limit < 1:
        raise DataError(f"eval.limit must be at least 1, got {limit}")
    if "options" in rows[0][1]:
        items = _unique_ids([parse_mcq(source, row) for source, row in rows])
        return MCQTask(name, items[:limit], str(where))
    return OpenTask(name, _unique_ids(_open_examples(rows))[:limit], str(where))


def resolve(name: str, data_dir: str | None) -> str:
    """Where a task's items live: <data_dir>/<name>.jsonl for built-in names, else the name itself."""
    if name not in BUILTIN:
        if Path(name).expanduser().exists():
            return str(Path(name).expanduser())
        if looks_like_hub_id(name):
            return name
        raise DataError(f"{name}: no such task file (built-in tasks: {', '.join(BUILTIN)})")
    if data_dir is None:
        raise DataError(f"task {name} needs eval.data_dir (--data-dir), a folder holding {name}.jsonl")
    path = Path(data_dir).expanduser() / f"{name}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: task file not found (eval.data_dir should hold {name}.jsonl)")
    return str(path)


def parse_mcq(source: str, row: dict) -> MCQExample:
    """One multiple-choice row, checked: every problem names the line and the field."""
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{source}: field 'question' is missing or empty")
    options = _options(source, row.get("options"))
    answer = row.get("answer")
    if answer is None or (isinstance(answer, str) and not answer.strip()):
        raise DataError(f"{source}: field 'answer' is missing")
    answer = str(answer).strip()
    if answer not in options:
        raise DataError(f"{source}: field 'answer' = {answer!r} is not one of the option letters "
                        f"{', '.join(options)}")
    return MCQExample(_item_id(row, source), question.strip(), options, answer, source)


def _options(source: str, raw) -> dict:
    if isinstance(raw, list):  # a plain list of option texts is lettered A, B, C, ...
        raw = {chr(ord("A") + i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict) or len(raw) < 2:
        raise DataError(f"{source}: field 'options' must map at least two letters to texts, "
                        f'e.g. {{"A": "...", "B": "..."}}')
    options = {}
    for key, text in raw.items():
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: field 'options.{key}' is empty")
        options[str(key).strip()] = text.strip()
    return options


def _open_examples(rows: list) -> list[OpenExample]:
    from medtune.data.formats import convert

    examples = []
    for (source, row), record in zip(rows, convert(rows)):
        if not record.messages or record.messages[-1].role != "assistant":
            raise DataError(f"{record.source}: an open-ended item needs a question and a reference answer")
        ref = record.messages[-1].content.strip()
        if not ref:
            raise DataError(f"{record.source}: field 'answer' (the reference answer) is empty")
        examples.append(OpenExample(_item_id(row, source), tuple(record.messages[:-1]), ref, source))
    return examples


def _item_id(row: dict, source: str) -> str:
    """The row's own id, else its place ("file.jsonl:12")."""
    return str(row.get("id") or Path(source).name)


def _unique_ids(items: list) -> list:
    """Paired comparisons match items by id, so two items may not share one."""
    seen: dict[str, str] = {}
    for item in items:
        if item.id in seen:
            raise DataError(f"{item.source}: field 'id' = {item.id!r} repeats the id of {seen[item.id]}")
        seen[item.id] = item.source
    return items
