"""Data hygiene: exact-duplicate removal, train/eval leakage checks and train/valid/test question overlap, after
folding white space and case."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from medtune.data.records import Record
from medtune.data.sources import load_rows
from medtune.errors import DataError


def normalize(text: str) -> str:
    """Fold runs of white space to one space and case to lower case, so trivial variants compare equal."""
    return " ".join(text.split()).casefold()


def record_key(record: Record) -> tuple:
    """The whole record, normalised: two records with the same key are duplicates."""
    turns = tuple((m.role, normalize(m.content), normalize(m.reasoning or "")) for m in record.messages)
    return turns, normalize(record.meta.get("text", ""))


def dedup(records: Sequence[Record]) -> tuple[list[Record], int, list[str]]:
    """(kept, n_removed, removed_sources): the first of each group of duplicates is kept."""
    seen: set[tuple] = set()
    kept, removed = [], []
    for record in records:
        key = record_key(record)
        if key in seen:
            removed.append(record.source)
        else:
            seen.add(key)
            kept.append(record)
    return kept, len(removed), removed


def load_eval_questions(eval_files: Iterable[str | Path]) -> dict[str, list[tuple[str, str]]]:
    """normalised question -> [(eval_file, eval_id)], from MCQ .jsonl files (id, question, options, answer)."""
    index: dict[str, list[tuple[str, str]]] = {}
    for path in eval_files:
        rows, _ = load_rows(Path(path))
        for source, row in rows:
            question = next((v for k, v in row.items() if str(k).lower() == "question"), None)  # Question too
            if not isinstance(question, str) or not question.strip():
                raise DataError(f"{source}: missing or empty field 'question' (eval MCQ file)")
            index.setdefault(normalize(question), []).append((str(path), str(row.get("id", source))))
    return index


def leakage(records: Sequence[Record], eval_files: Sequence[str | Path]) -> dict:
    """Training questions that also appear in the eval files: counts per file and every match."""
    index = load_eval_questions(eval_files)
    matches = []
    for record in records:
        question = record.question
        for eval_file, eval_id in index.get(normalize(question), []) if question else []:
            matches.append({"source": record.source, "eval_file": eval_file, "eval_id": eval_id})
    per_file = {str(f): sum(m["eval_file"] == str(f) for m in matches) for f in eval_files}
    return {
        "eval_files": [str(f) for f in eval_files],
        "eval_questions": sum(len(v) for v in index.values()),
        "leaked_records": len({m["source"] for m in matches}),
        "per_file": per_file,
        "matches": matches,
    }


def split_overlap(splits: dict[str, Sequence[Record]]) -> dict:
    """{valid/test: {records, matches}}: records whose question is also a training question (a valid_file that
    shares questions with train_file, or one question asked twice with different answers)."""
    train = {}
    for record in splits.get("train", []):
        if record.question:
            train.setdefault(normalize(record.question), record.source)
    found = {}
    for name in ("valid", "test"):
        matches = [{"source": r.source, "train_source": train[normalize(r.question)]}
                   for r in splits.get(name, []) if r.question and normalize(r.question) in train]
        found[name] = {"records": len(matches), "matches": matches}
    return found
