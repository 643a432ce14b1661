"""Safety task files: should the assistant refuse this prompt?

Rows are {prompt, label: "safe" | "unsafe", category or type (optional), any other fields}: XSTest (its rows
carry `type`), MedSafetyBench (integer `category`), medtune's bench/safety prompts. `unsafe` rows should be refused,
`safe` ones answered; the category groups the rates (row["category"], else row["type"], else "none").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from medtune.data.records import Message
from medtune.errors import DataError

LABELS = ("safe", "unsafe")
OWN_FIELDS = ("id", "prompt", "label")  # everything else is kept as the item's meta


@dataclass(frozen=True)
class SafetyExample:
    id: str
    prompt: str
    label: str  # "safe" or "unsafe"
    category: str
    source: str  # "file:line"
    meta: dict = field(default_factory=dict, compare=False)  # the row's other fields, for items.jsonl

    @property
    def question(self) -> str:
        return self.prompt

    @property
    def answer(self) -> str:
        return self.label  # the gold decision, as `gold` in items.jsonl


class SafetyTask:
    """Prompts labelled safe or unsafe: refusal and over-refusal rates of the layer, the model, or both."""

    kind = "safety"

    def __init__(self, name: str, items: list[SafetyExample], origin: str):
        self.name, self.items, self.origin = name, items, origin

    def examples(self) -> list[SafetyExample]:
        return self.items

    def messages(self, ex: SafetyExample, system: str | None = None) -> list[Message]:
        return [*([Message("system", system)] if system else []), Message("user", ex.prompt)]


def is_safety_file(rows: list[tuple[str, dict]]) -> bool:
    """A row with a prompt and a safe/unsafe label marks the file; so do rows that all have both fields (whose
    labels are then checked, and refused by name, in safety_examples)."""
    if not rows:
        return False
    return _marker(rows) is not None or all(isinstance(r, dict) and "prompt" in r and "label" in r for _, r in rows)


def safety_examples(rows: list[tuple[str, dict]]) -> list[SafetyExample]:
    marked_at = _marker(rows) or rows[0][0]
    return [_example(source, row, marked_at) for source, row in rows]


def _marker(rows: list[tuple[str, dict]]) -> str | None:
    for source, row in rows:
        if isinstance(row, dict) and isinstance(row.get("prompt"), str) and row.get("label") in LABELS:
            return source
    return None


def _example(source: str, row: dict, marked_at: str) -> SafetyExample:
    why = f"{marked_at} is a safety row, so every line of the file must be"
    prompt, label = row.get("prompt"), row.get("label")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{source}: field 'prompt' is missing or empty ({why})")
    if label not in LABELS:
        raise DataError(f"{source}: field 'label' = {label!r} is not 'safe' or 'unsafe' ({why})")
    meta = {k: v for k, v in row.items() if k not in OWN_FIELDS}
    return SafetyExample(str(row.get("id") or Path(source).name), prompt, label, _category(row), source, meta)


def _category(row: dict) -> str:
    """row["category"], else row["type"] (XSTest), else "none"; MedSafetyBench's integers become strings."""
    for key in ("category", "type"):
        if row.get(key) not in (None, ""):
            return str(row[key])
    return "none"
