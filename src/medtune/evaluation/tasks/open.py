"""Open-ended questions with reference answers (medical-o1 records, prepare's test split, chat rows): the answer is
generated, then scored by embedding similarity to the reference and, when a judge is set, graded by the judge.
Similarity and judge scores of two systems are compared by a paired bootstrap."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean

from medtune.data.records import Message
from medtune.evaluation import stats
from medtune.evaluation.formatting import dash, num, pct
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.records import ItemRecord
from medtune.evaluation.tasks.base import GenerationSummary, RunContext, Task, generation_json, too_long
from medtune.evaluation.tasks.mcq import format_kept

SIMILARITY_TIE = 0.01  # cosine differences this small count as ties


@dataclass(frozen=True)
class OpenExample:
    id: str
    messages: tuple  # the conversation up to the answer (system, user, ...), as records.Message
    reference: str  # the reference answer (reasoning removed)
    source: str

    @property
    def question(self) -> str:
        return next((m.content for m in reversed(self.messages) if m.role == "user"), "")


@dataclass
class OpenSummary:
    """Similarity to the references (mean, median, shares of good and poor answers) and the judge's mean scores."""

    items: int
    too_long: int | None = None
    generation: GenerationSummary | None = None
    similarity: dict | None = None  # stats.similarity_summary
    judge: dict | None = None  # {judged, failed, criterion: mean score}

    def to_json(self) -> dict:
        out = {"items": self.items} | generation_json(self.generation, self.too_long)
        out |= {"similarity": self.similarity} if self.similarity is not None else {}
        return out | ({"judge": self.judge} if self.judge is not None else {})

    @classmethod
    def from_json(cls, data: dict) -> OpenSummary:
        return cls(data["items"], data.get("too_long"), GenerationSummary.from_json(data), data.get("similarity"),
                   data.get("judge"))

    # ------------------------------------------------------------ shown

    TITLE = "Open-ended answers"
    CELL_WHAT = "similarity"
    def columns(self) -> list[str]:
        judged = ["judged", "failed", *CRITERIA] if self.judge else []  # the judge grades every system or none
        return ["items", "similarity mean", "median", "good (>=0.7)", "poor (<=0.3)", "too long", "format ok", *judged]

    def cells(self) -> list:
        s, j = self.similarity or {}, self.judge
        judged = [dash(j.get("judged")), dash(j.get("failed")), *(num(j.get(c), 2) for c in CRITERIA)] if j else []
        return [self.items, num(s.get("mean")), num(s.get("median")), pct(s.get("good_share")),
                pct(s.get("poor_share")), dash(self.too_long),
                pct(self.generation and self.generation.format_compliance), *judged]

    def console(self, label: str, name: str, items_per_s: float, mode: str) -> str:
        sim = (self.similarity or {}).get("mean", float("nan"))
        line = f"similarity mean {sim:.4f}"
        line += f", judge correctness {self.judge.get('correctness', float('nan')):.2f}" if self.judge else ""
        line += self.generation.line() if self.generation else ""
        return f"{label:<6} {name:<14} {self.items:>5} items  {line}  ({items_per_s:.2f} items/s)"

    def cell(self) -> str:
        return num((self.similarity or {}).get("mean"), 3)

    @staticmethod
    def extra_tables(rows: list) -> list[str]:
        return []


class OpenTask(Task):
    """Open-ended questions with reference answers; similarity and the judge score whole batches of answers."""

    kind = "open"
    Summary = OpenSummary
    uses_judge = True
    needs_embedder = True
    answers = "open-ended"

    def messages(self, ex: OpenExample, system: str | None = None) -> list[Message]:
        has_system = any(m.role == "system" for m in ex.messages)
        return [*([Message("system", system)] if system and not has_system else []), *ex.messages]

    def gold(self, ex: OpenExample) -> str:
        return ex.reference

    def finish(self, records: list[ItemRecord], engine, ctx: RunContext) -> None:
        """Similarity of every answer to its reference, embedded in batches; an item that never ran scores 0."""
        if ctx.embedder is None:
            return
        from medtune.evaluation.similarity import similarities

        scores = similarities(ctx.embedder, [r.answer or "" for r in records], [r.gold for r in records])
        for record, score in zip(records, scores):
            record.scores.similarity = round(score, 6)

    # ------------------------------------------------------------ summaries

    def summary(self, records: list[ItemRecord], mode: str) -> OpenSummary:
        out = OpenSummary(len(records), too_long(records), GenerationSummary.of(records))
        sims = [r.scores.similarity for r in records if r.scores.similarity is not None]
        out.similarity = stats.similarity_summary(sims) if sims else None
        judged = [r.scores.judge for r in records if r.scores.judge is not None]
        if judged:
            ok = [j for j in judged if not j.get("failed")]
            out.judge = {"judged": len(ok), "failed": len(judged) - len(ok),
                         **{c: mean(j["scores"][c] for j in ok) for c in CRITERIA if ok}}
        return out

    def paired(self, base: list[ItemRecord], tuned: list[ItemRecord], seed: int) -> dict:
        """Tuned minus base on the items both answered: similarity and each judge criterion, paired bootstrap."""
        pairs = stats.matched(base, tuned)
        out: dict = {"items": len(pairs)}
        sims = [(b.scores.similarity, t.scores.similarity) for b, t in pairs
                if b.scores.similarity is not None and t.scores.similarity is not None]
        if sims:
            b, t = zip(*sims)
            out["similarity"] = {**stats.paired_bootstrap(list(b), list(t), seed),
                                 **stats.wins_ties_losses(b, t, tol=SIMILARITY_TIE)}
        judged = [(b.scores, t.scores) for b, t in pairs if b.scores.judged(CRITERIA[0]) is not None
                  and t.scores.judged(CRITERIA[0]) is not None]
        if judged:
            out["judge"] = {c: stats.paired_bootstrap([b.judged(c) for b, _ in judged],
                                                      [t.judged(c) for _, t in judged], seed) for c in CRITERIA}
        return out

    def pair_rows(self, pairs: list[tuple[ItemRecord, ItemRecord]], seed: int) -> list[dict]:
        """compare's paired rows: format kept, similarity, each judge criterion."""
        rows = [{"metric": "format", **stats.paired_flags(pairs, format_kept, seed)},
                {"metric": "similarity", **stats.paired_scores(pairs, lambda r: r.scores.similarity, seed,
                                                               SIMILARITY_TIE)}]
        return rows + [{"metric": f"judge {c}", **stats.paired_scores(pairs, _criterion(c), seed)} for c in CRITERIA]


def _criterion(name: str):
    return lambda record: record.scores.judged(name)
