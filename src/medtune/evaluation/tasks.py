"""Benchmarks as tiny objects (nanochat style): `examples()` and `score(example, output)`.

Three kinds of task file:
  multiple choice   {id, question, options: {letter: text}, answer: letter}  (MedQA, MedMCQA, PubMedQA, MMLU),
                    or a hub layout of those benchmarks (layouts.py): any row in one makes the file MCQ
  open-ended        any layout `prepare` reads (medical-o1, chat rows from prepare's test split, ...): the last
                    assistant turn's answer is the reference for similarity and the judge
  safety            {prompt, label: safe|unsafe, category or type?, ...} (XSTest, MedSafetyBench, bench/safety):
                    should the assistant refuse? Measured on the safety layer alone or on the whole path
Built-in names resolve to <data_dir>/<name>.jsonl, or to their hub datasets without a data_dir (hub.py);
anything else is a file, a folder or a hub dataset id.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from medtune.data.records import Message
from medtune.data.sources import load_rows, looks_like_hub_id
from medtune.errors import DataError
from medtune.evaluation import layouts
from medtune.evaluation.extract import extract_letter
from medtune.evaluation.hub import BUILTIN_HUB, load_hub_rows, offline_hint
from medtune.evaluation.safety_tasks import SafetyTask, is_safety_file, safety_examples

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


def load_task(name_or_path: str, data_dir: str | None = None, limit: int | None = None, *,
              hub_split: str = "test", hub_config: str | None = None,
              answer_base: int | None = None) -> MCQTask | OpenTask | SafetyTask:
    """A built-in name, a file or folder, or a hub dataset id -> its task, holding the first `limit` items.
    Built-in names read <data_dir>/<name>.jsonl, or their hub dataset (hub.BUILTIN_HUB) when data_dir is None;
    hub_split and hub_config apply to other hub ids and dataset folders; answer_base is what a MedMCQA file's cop
    counts from (eval.answer_base; None: the hub's 0)."""
    if limit is not None and limit < 1:
        raise DataError(f"eval.limit must be at least 1, got {limit}")
    if answer_base not in (None, 0, 1):
        raise DataError(f"eval.answer_base must be 0 or 1 (or unset), got {answer_base!r}")
    rows, where = _rows(name_or_path, data_dir, hub_split, hub_config)
    name = name_or_path if name_or_path in BUILTIN else Path(name_or_path).stem or name_or_path
    found = layouts.detect(rows)  # any row in a known MCQ layout makes the whole file multiple choice
    if found:
        layout, marked_at = found
        items = _unique_ids([_mcq_example(d) for d in layouts.normalise(layout, rows, marked_at, answer_base)])
        return MCQTask(name, items[:limit], where)
    if is_safety_file(rows):
        return SafetyTask(name, _unique_ids(safety_examples(rows))[:limit], where)
    return OpenTask(name, _unique_ids(_open_examples(rows))[:limit], where)


def _rows(name: str, data_dir: str | None, hub_split: str, hub_config: str | None) -> tuple[list, str]:
    """(rows, where they came from)."""
    if name in BUILTIN and data_dir is None:
        dataset = BUILTIN_HUB[name]
        return load_hub_rows(dataset, name), dataset.describe()
    where = resolve(name, data_dir)
    rows, _ = load_rows(where, hub_split=hub_split, hub_config=hub_config, hub_hint=offline_hint())
    return rows, where


def resolve(name: str, data_dir: str | None) -> str:
    """Where a task's items live: <data_dir>/<name>.jsonl for built-in names (given a data_dir), else the name."""
    if name not in BUILTIN:
        if Path(name).expanduser().exists():
            return str(Path(name).expanduser())
        if looks_like_hub_id(name):
            return name
        raise DataError(f"{name}: no such task file (built-in tasks: {', '.join(BUILTIN)})")
    path = Path(data_dir).expanduser() / f"{name}.jsonl"
    if not path.is_file():
        raise DataError(f"{path}: task file not found (eval.data_dir should hold {name}.jsonl)")
    return str(path)


def _mcq_example(item: dict) -> MCQExample:
    return MCQExample(_item_id(item, item["source"]), item["question"], item["options"], item["answer"],
                      item["source"])


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
