"""One evaluated item, typed: what every line of items.jsonl holds, and the one place those lines are written and read.

A line is flat JSON (the layout earlier medtune versions wrote, so their evaluations still load in `compare`):

    system, task, id, source, question, gold, prompt, reasoning, answer, prediction, correct, parsed, error, scores
    + prediction_norm, correct_norm                         multiple choice by log-likelihood
    + finish_reason, reasoning_tokens, generated_tokens,    a generated answer (Generated)
      format_ok, safety, disclaimer
    + label, category, meta, refused, action, layer,        a safety item (Refusal), and in generate mode the model
      category_decided, reason, score, decided_by, seconds   and the layer apart (WholePath)
      (+ model_refused, layer_refused, request_verdict, answer_verdict)
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from medtune.errors import MedtuneError


@dataclass
class Scores:
    """Scores kept per item under "scores": cosine similarity to the reference, the judge's verdict (its criteria
    scores, or failed), the options' log-likelihoods."""

    similarity: float | None = None
    judge: dict | None = None
    logliks: list | None = None

    def to_json(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_json(cls, data: dict | None) -> Scores:
        data = data or {}
        return cls(data.get("similarity"), data.get("judge"), data.get("logliks"))

    def judged(self, criterion: str) -> float | None:
        """One criterion of a judgment that succeeded (None: not judged, or the judge failed)."""
        return self.judge["scores"][criterion] if self.judge and not self.judge.get("failed") else None


@dataclass
class Generated:
    """What the model generated for the item (None fields: the prompt never ran, too long for the model)."""

    finish_reason: str | None = None
    reasoning_tokens: int = 0
    generated_tokens: int = 0
    format_ok: bool | None = None  # reasoning present and closed, then an answer
    safety: dict | None = None  # the layer's verdict when it replaced the answer (None: it did not)
    disclaimer: bool | None = None


@dataclass
class WholePath:
    """Generate mode on a safety item: the model alone (layer off) and the layer alone, apart."""

    model_refused: bool | None = None  # None: the prompt never ran
    layer_refused: bool | None = None  # None: the layer was switched off
    request_verdict: dict | None = None
    answer_verdict: dict | None = None


@dataclass
class Refusal:
    """A safety item: its gold label and what was decided (screen mode: the layer; generate mode: the whole path,
    layer or model, with `path` holding the two apart)."""

    label: str
    category: str
    meta: dict = field(default_factory=dict)
    refused: bool = False
    action: str = "allow"
    layer: str | None = None
    category_decided: str | None = None
    reason: str | None = None
    score: float | None = None
    decided_by: str | None = None  # rules, classifier, guard, model, or None (answered)
    path: WholePath | None = None
    seconds: float | None = None  # the layer's screening time for this row


@dataclass
class ItemRecord:
    system: str
    task: str
    id: str
    source: str
    question: str
    gold: Any  # the gold letter, the reference answer, or the safety label
    prompt: str | None = None
    reasoning: str | None = None
    answer: str | None = None
    prediction: str | None = None
    correct: bool | None = None
    parsed: bool | None = None
    error: str | None = None
    scores: Scores = field(default_factory=Scores)
    prediction_norm: str | None = None  # log-likelihood mode: the acc_norm choice
    correct_norm: bool | None = None
    generated: Generated | None = None
    refusal: Refusal | None = None

    def to_json(self) -> dict:
        """The flat items.jsonl line, keys in the order earlier versions wrote them."""
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name in BASE_KEYS}
        out["scores"] = self.scores.to_json()
        if self.refusal is not None:
            out |= {"label": self.refusal.label, "category": self.refusal.category, "meta": self.refusal.meta}
        if self.prediction_norm is not None or self.correct_norm is not None:
            out |= {"prediction_norm": self.prediction_norm, "correct_norm": self.correct_norm}
        if self.generated is not None:
            out |= asdict(self.generated)
        if self.refusal is not None:
            verdict = {k: getattr(self.refusal, k) for k in VERDICT_KEYS}
            whole = asdict(self.refusal.path) if self.refusal.path is not None else {}
            out |= verdict | whole | {"seconds": self.refusal.seconds}
        return out

    @classmethod
    def from_json(cls, data: dict) -> ItemRecord:
        base = {k: data.get(k) for k in BASE_KEYS if k != "scores"}
        generated = _part(Generated, data) if "format_ok" in data else None
        refusal = None
        if "label" in data and "refused" in data:
            path = _part(WholePath, data) if "model_refused" in data else None
            refusal = Refusal(data["label"], data.get("category") or "none", data.get("meta") or {},
                              **{k: data.get(k) for k in VERDICT_KEYS}, path=path, seconds=data.get("seconds"))
        return cls(**base, scores=Scores.from_json(data.get("scores")), prediction_norm=data.get("prediction_norm"),
                   correct_norm=data.get("correct_norm"), generated=generated, refusal=refusal)


BASE_KEYS = ("system", "task", "id", "source", "question", "gold", "prompt", "reasoning", "answer", "prediction",
             "correct", "parsed", "error", "scores")
VERDICT_KEYS = ("refused", "action", "layer", "category_decided", "reason", "score", "decided_by")


def _part(cls, data: dict):
    return cls(**{f.name: data.get(f.name, f.default) for f in fields(cls)})


def write_items(path: Path, records: list[ItemRecord]) -> None:
    with path.open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record.to_json(), ensure_ascii=False, default=str) + "\n")


def read_items(path: Path) -> list[ItemRecord]:
    """items.jsonl as records; a line that is not JSON is one error naming it."""
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(ItemRecord.from_json(json.loads(line)))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise MedtuneError(f"{path}:{number}: not an items.jsonl line ({e})") from None
    return records
