"""Multiple choice (MedQA, MedMCQA, PubMedQA, MMLU-medical and any file in their layouts): scored by the options'
log-likelihoods as lm-evaluation-harness scores them, or by asking for reasoning and then a letter, parsed from the
answer. Accuracy with its Wilson interval; tuned versus base by McNemar and a paired bootstrap."""

from __future__ import annotations

from dataclasses import dataclass

from medtune.config import Config
from medtune.data.records import Message
from medtune.data.verifiable import mcq_user_text
from medtune.errors import DataError
from medtune.evaluation import runner, scoring, stats
from medtune.evaluation.formatting import ci, dash, num, pct
from medtune.evaluation.records import ItemRecord
from medtune.evaluation.tasks.base import (
    GenerationSummary,
    RunContext,
    Task,
    generation_json,
    too_long,
)

MCQ_FORMATS = ("letters", "cloze")

@dataclass(frozen=True)
class MCQExample:
    id: str
    question: str
    options: dict  # letter -> option text, in file order
    answer: str  # the gold letter
    source: str  # "file:line", for error messages and items.jsonl


@dataclass
class MCQSummary:
    """Accuracy and its interval; acc_norm (log-likelihood); answers no letter was read from (generate). Items that
    never ran (too long) and answers the safety layer replaced count as wrong, and apart, never as unparseable."""

    accuracy: float
    ci95: list
    items: int
    unparseable: int
    acc_norm: float | None = None
    too_long: int | None = None
    generation: GenerationSummary | None = None

    def to_json(self) -> dict:
        norm = {} if self.acc_norm is None else {"acc_norm": self.acc_norm}
        head = {"accuracy": self.accuracy, "ci95": self.ci95, "items": self.items, **norm,
                "unparseable": self.unparseable}
        return head | generation_json(self.generation, self.too_long)

    @classmethod
    def from_json(cls, data: dict) -> MCQSummary:
        return cls(data["accuracy"], data["ci95"], data["items"], data.get("unparseable", 0), data.get("acc_norm"),
                   data.get("too_long"), GenerationSummary.from_json(data))

    # ------------------------------------------------------------ shown

    TITLE = "Multiple choice"
    CELL_WHAT = "accuracy"
    def columns(self) -> list[str]:
        return ["items", "accuracy", "95% CI", "acc_norm", "unparseable", "too long", "safety refused", "format ok",
                "reasoning tokens"]

    def cells(self) -> list:
        g = self.generation
        return [self.items, f"{self.accuracy:.4f}", ci(self.ci95), num(self.acc_norm), self.unparseable,
                dash(self.too_long), dash(g and g.safety_replaced), pct(g and g.format_compliance),
                num(g and g.mean_reasoning_tokens, 1)]

    def console(self, label: str, name: str, items_per_s: float, mode: str) -> str:
        extra = f", acc_norm {self.acc_norm:.4f}" if self.acc_norm is not None else f", unparseable {self.unparseable}"
        extra += f", too long {self.too_long}" if self.too_long else ""
        replaced = self.generation.safety_replaced if self.generation else 0
        extra += f", refused by the safety layer {replaced}" if replaced else ""
        line = f"accuracy {self.accuracy:.4f} [{self.ci95[0]:.4f}, {self.ci95[1]:.4f}]{extra}"
        line += self.generation.line() if self.generation else ""
        return f"{label:<6} {name:<14} {self.items:>5} items  {line}  ({items_per_s:.2f} items/s)"

    def cell(self) -> str:
        return f"{pct(self.accuracy)} [{pct(self.ci95[0])}, {pct(self.ci95[1])}]"

    @staticmethod
    def extra_tables(rows: list) -> list[str]:
        return []


class MCQTask(Task):
    """A multiple-choice benchmark: lm-eval style log-likelihood requests, or a chat prompt whose answer is parsed."""

    kind = "mcq"
    Summary = MCQSummary

    def messages(self, ex: MCQExample, system: str | None = None) -> list[Message]:
        user = mcq_user_text(ex.question, ex.options)  # the RL stage's MCQ prompts are the same text
        return [*([Message("system", system)] if system else []), Message("user", user)]

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

    def score_answer(self, ex: MCQExample, answer: str) -> dict:
        """answer: the answer part of a generation (the text after </think>)."""
        letter = scoring.mcq_choice(_answer_only(answer), ex.options)
        return {"prediction": letter, "parsed": letter is not None, "correct": letter == ex.answer}

    # ------------------------------------------------------------ running

    def generates(self, cfg: Config) -> bool:
        return cfg.eval.mode == "generate"

    def needs_logits(self, cfg: Config) -> bool:
        return cfg.eval.mode == "loglik"

    def run(self, engine, ctx: RunContext) -> tuple[list[ItemRecord], float]:
        if ctx.cfg.eval.mode == "loglik":
            return runner.timed(lambda: self.loglik_records(engine, ctx))
        return super().run(engine, ctx)

    def loglik_records(self, engine, ctx: RunContext) -> list[ItemRecord]:
        from medtune.evaluation.loglik import score_mcq

        items, cfg = self.examples(), ctx.cfg
        n_requests = sum(len(ex.options) for ex in items)
        with runner.progress_bar(len(items), f"{ctx.label} {self.name} loglik",
                                 n_requests / max(1, len(items))) as update:
            verdicts = score_mcq(engine.model, engine.tokenizer, self, cfg.eval.mcq_format, cfg.eval.batch_size,
                                 update)
        records = []
        for ex, v in zip(items, verdicts):
            record = self.record(ctx.label, ex)
            record.prompt, record.prediction, record.correct, record.parsed = (v["prompt"], v["prediction"],
                                                                               v["correct"], True)
            record.prediction_norm, record.correct_norm = v["prediction_norm"], v["correct_norm"]
            record.scores.logliks = v["logliks"]
            records.append(record)
        return records

    def unran(self, record: ItemRecord, ex: MCQExample, why: str, engine, ctx: RunContext) -> None:
        record.correct = False  # a question it could not be asked counts as wrong (and apart, as too long)

    def score(self, record: ItemRecord, ex: MCQExample, gen, engine, ctx: RunContext) -> None:
        """An answer the safety layer replaced is wrong, whatever option its own text reads as (the emergency
        advice names "the nearest emergency department" and "poison control")."""
        if gen.safety is not None:
            record.prediction, record.parsed, record.correct = None, False, False
            return
        letter = scoring.mcq_choice(_answer_only(gen.plain_answer), ex.options)
        record.prediction, record.parsed, record.correct = letter, letter is not None, letter == ex.answer

    def settings_that_matter(self, cfg: Config) -> list[str]:
        return ["eval.mode", "eval.mcq_format"] + (super().settings_that_matter(cfg) if self.generates(cfg) else [])

    # ------------------------------------------------------------ summaries

    def summary(self, records: list[ItemRecord], mode: str) -> MCQSummary:
        acc = stats.accuracy([bool(r.correct) for r in records])
        norm = (stats.accuracy([bool(r.correct_norm) for r in records])["accuracy"]
                if records and records[0].correct_norm is not None else None)
        unparseable = sum(r.parsed is False and not (r.generated and r.generated.safety) for r in records)
        return MCQSummary(acc["accuracy"], acc["ci95"], acc["items"], unparseable, norm, too_long(records),
                          GenerationSummary.of(records))

    def paired(self, base: list[ItemRecord], tuned: list[ItemRecord], seed: int) -> dict:
        """Tuned minus base on the items both have: accuracy by paired bootstrap, McNemar, wins / ties / losses."""
        pairs = stats.matched(base, tuned)
        out: dict = {"items": len(pairs)}
        if pairs:
            b, t = [bool(p[0].correct) for p in pairs], [bool(p[1].correct) for p in pairs]
            out["accuracy"] = {**stats.paired_bootstrap(b, t, seed), **stats.mcnemar(b, t),
                               **stats.wins_ties_losses(b, t)}
        return out

    def pair_rows(self, pairs: list[tuple[ItemRecord, ItemRecord]], seed: int) -> list[dict]:
        """compare's paired rows: accuracy, then format kept (generate mode)."""
        return [{"metric": "accuracy", **stats.paired_flags(pairs, lambda r: r.correct, seed)},
                {"metric": "format", **stats.paired_flags(pairs, format_kept, seed)}]


def _answer_only(text: str):
    """An answer already split from its reasoning (the engine's), as scoring takes it."""
    from medtune.inference.reasoning import Split

    return Split(None, text, True)


def format_kept(record: ItemRecord) -> bool | None:
    return record.generated.format_ok if record.generated is not None else None
