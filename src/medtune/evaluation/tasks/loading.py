"""A task name, file, folder or hub id -> its task: which kind it is, read from its rows.

Multiple choice when any row is in a known MCQ layout (layouts.py), safety when its rows are {prompt, label:
safe|unsafe}, else open-ended (any layout `prepare` reads, whose last assistant turn is the reference answer).
"""

from __future__ import annotations

from pathlib import Path

from medtune.data.sources import load_rows, looks_like_hub_id
from medtune.errors import DataError
from medtune.evaluation import layouts
from medtune.evaluation.hub import load_hub_rows, offline_hint
from medtune.evaluation.tasks.benchmarks import BENCHMARKS, BUILTIN
from medtune.evaluation.tasks.mcq import MCQExample, MCQTask
from medtune.evaluation.tasks.open import OpenExample, OpenTask
from medtune.evaluation.tasks.safety import SafetyTask, is_safety_file, safety_examples


def load_task(name_or_path: str, data_dir: str | None = None, limit: int | None = None, *,
              hub_split: str = "test", hub_config: str | None = None,
              answer_base: int | None = None) -> MCQTask | OpenTask | SafetyTask:
    """A built-in name, a file or folder, or a hub dataset id -> its task, holding the first `limit` items.
    Built-in names read <data_dir>/<name>.jsonl, or their hub dataset (benchmarks.py) when data_dir is None;
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
    if name in BENCHMARKS and data_dir is None:
        dataset = BENCHMARKS[name].hub
        return load_hub_rows(dataset, name), dataset.describe()
    where = resolve(name, data_dir)
    rows, _ = load_rows(where, hub_split=hub_split, hub_config=hub_config, hub_hint=offline_hint())
    return rows, where


def resolve(name: str, data_dir: str | None) -> str:
    """Where a task's items live: <data_dir>/<name>.jsonl for built-in names (given a data_dir), else the name."""
    if name not in BENCHMARKS:
        if Path(name).expanduser().exists():
            return str(Path(name).expanduser())
        if looks_like_hub_id(name):
            return name
        raise DataError(f"{name}: no such task file (built-in tasks: {', '.join(BUILTIN)})")
    path = Path(data_dir).expanduser() / BENCHMARKS[name].file_name
    if not path.is_file():
        raise DataError(f"{path}: task file not found (eval.data_dir should hold {path.name})")
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
