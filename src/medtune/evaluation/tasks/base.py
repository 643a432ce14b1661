"""What every task kind shares: its items, the generated records (answers written by the engine, then scored by the
kind), and the summary parts every generated kind reports. A kind (mcq.py, open.py, safety.py) overrides what
differs: how an item becomes a prompt and a record, how a record is scored and summarised, how two systems' records
pair up, and how its figures are shown.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from statistics import mean

from medtune.config import Config
from medtune.data.records import Message
from medtune.errors import MedtuneError
from medtune.evaluation import runner, scoring
from medtune.evaluation.records import Generated, ItemRecord
from medtune.inference.reasoning import Split


@dataclass
class RunContext:
    """What a task needs to run on one system."""

    cfg: Config
    label: str  # the system: "model", "tuned", "base" or a compared input's name
    embedder: object | None = None  # sentence-transformers model, for the kinds that score similarity


class Task:
    """A benchmark's items and how they are asked, answered and scored. `kind` names it in results.json."""

    kind = ""
    Summary: type  # its summary dataclass: to_json / from_json, and how its figures are shown
    uses_judge = False  # the judge grades its answers
    needs_embedder = False  # its answers are scored by embedding similarity
    screenable = False  # screen mode (the safety layer alone) measures it
    layer_on_answers = True  # generated behind the safety layer (False: the kind applies the layer itself)
    timed_generation = True  # its task time is generation time (tokens/s are meaningful)
    answers: str | None = None  # "open-ended": what its generated answers are called in a report's title (None:
    # the mode, loglik or generate, says how it is scored)

    def __init__(self, name: str, items: list, origin: str):
        self.name, self.items, self.origin = name, items, origin

    def examples(self) -> list:
        return self.items

    def messages(self, ex, system: str | None = None) -> list[Message]:
        return [*([Message("system", system)] if system else []), Message("user", ex.question)]

    # ------------------------------------------------------------ running

    def generates(self, cfg: Config) -> bool:
        """Whether evaluating this task writes answers (and so needs the safety layer)."""
        return True

    def needs_logits(self, cfg: Config) -> bool:
        """Whether it scores from the model's logits (which stay on transformers, whatever the engine)."""
        return False

    def run(self, engine, ctx: RunContext) -> tuple[list[ItemRecord], float]:
        """(one record per item, seconds) on one system."""
        return runner.timed(lambda: self.generated_records(engine, ctx))

    def check_screenable(self) -> None:
        if not self.screenable:
            raise MedtuneError(f"screen mode measures the safety layer on safety files ({{prompt, label: safe|unsafe}} "
                               f"rows); {self.name} is a {self.kind} task: use --mode loglik or generate")

    def screen(self, layer, label: str) -> tuple[list[ItemRecord], float]:
        """Screen mode: (records, seconds) of the safety layer alone on the task's prompts."""
        self.check_screenable()
        raise NotImplementedError

    def generated_records(self, engine, ctx: RunContext) -> list[ItemRecord]:
        items = self.examples()
        conversations = [self.messages(ex) for ex in items]
        generations = runner.generate(engine, conversations, ctx.cfg, f"{ctx.label} {self.name} generate",
                                      screen=self.layer_on_answers)
        records = []
        for ex, conversation, gen in zip(items, conversations, generations):
            record = self.record(ctx.label, ex)
            if isinstance(gen, str):  # the prompt could not run: recorded, counted apart
                record.prompt, record.error = engine.prompt(conversation), f"too long: {gen}"
                record.generated = Generated()
                self.unran(record, ex, gen, engine, ctx)
            else:
                written(record, engine, gen)
                self.score(record, ex, gen, engine, ctx)
            records.append(record)
        self.finish(records, engine, ctx)
        return records

    def record(self, label: str, ex) -> ItemRecord:
        """The record every mode starts from."""
        return ItemRecord(label, self.name, ex.id, ex.source, ex.question, self.gold(ex))

    def gold(self, ex):
        return ex.answer

    def unran(self, record: ItemRecord, ex, why: str, engine, ctx: RunContext) -> None:
        """An item whose prompt never ran (too long for the model: `why`)."""

    def score(self, record: ItemRecord, ex, gen, engine, ctx: RunContext) -> None:
        """Scores of one generated answer (gen: the engine's Generation), on the record."""

    def finish(self, records: list[ItemRecord], engine, ctx: RunContext) -> None:
        """Scores computed over all the answers at once (similarity embeds them in batches)."""

    # ------------------------------------------------------------ tuned versus base, shown

    @staticmethod
    def paired_lines(name: str, paired: dict) -> list[str]:
        """Console lines of the kind's own paired figures (accuracy and similarity are laid out by report.py)."""
        return []

    @staticmethod
    def paired_tables(paired: dict) -> list[str]:
        """report.md tables of the kind's own paired figures, over its tasks ({task: paired})."""
        return []

    # ------------------------------------------------------------ comparing runs

    def settings_that_matter(self, cfg: Config) -> list[str]:
        """The config keys a stored evaluation must share with this one to be reused for this task."""
        return ["eval.max_tokens", "eval.temperature", "generation", "safety"]


def written(record: ItemRecord, engine, gen) -> None:
    """What the model wrote (without the layer's disclaimer, which `disclaimer` notes), whether it kept the format,
    and why the layer replaced it (`safety`, None: it did not)."""
    reasoning, answer = gen.reasoning or "", gen.plain_answer
    record.prompt, record.reasoning, record.answer = gen.prompt, gen.reasoning, answer
    tokens = len(engine.tokenizer.encode(reasoning, add_special_tokens=False)) if reasoning else 0
    record.generated = Generated(
        gen.finish_reason, tokens, gen.stats.generated_tokens,
        scoring.format_ok(Split(gen.reasoning, answer, gen.reasoning_finished)),
        gen.safety.to_dict() if gen.safety is not None else None, bool(gen.disclaimer))


# ---------------------------------------------------------------- summary parts every generated kind has


@dataclass
class GenerationSummary:
    """Format compliance and reasoning length of the generated answers (items that never ran left out)."""

    mean_reasoning_tokens: float
    format_compliance: float
    format_ok: int
    generated: int
    truncated: int  # cut at max_tokens
    safety_replaced: int  # the layer's reply, not the model's

    @classmethod
    def of(cls, records: list[ItemRecord]) -> GenerationSummary | None:
        gen = [r for r in records if r.generated is not None and r.generated.format_ok is not None]
        if not gen:
            return None
        lengths = [r.generated.reasoning_tokens or len((r.reasoning or "").split()) for r in gen]
        ok = sum(bool(r.generated.format_ok) for r in gen)
        return cls(mean(lengths), ok / len(gen), ok, len(gen), sum(r.generated.finish_reason == "length" for r in gen),
                   sum(r.generated.safety is not None for r in gen))

    @classmethod
    def from_json(cls, data: dict) -> GenerationSummary | None:
        return cls(**{f.name: data[f.name] for f in fields(cls)}) if "format_ok" in data else None

    def line(self) -> str:
        """', format ok 7/8 (reasoning 412 tokens, 1 cut at max_tokens)'."""
        cut = f", {self.truncated} cut at max_tokens" if self.truncated else ""
        return f", format ok {self.format_ok}/{self.generated} (reasoning {self.mean_reasoning_tokens:.0f} tokens{cut})"


def too_long(records: list[ItemRecord]) -> int | None:
    """Items whose prompt did not fit the model's context (generate mode; None when nothing was generated)."""
    if not any(r.generated is not None for r in records):
        return None
    return sum(bool(r.error) for r in records)


def generation_json(generation: GenerationSummary | None, too_long_count: int | None) -> dict:
    """The flat keys results.json holds for the generated answers of a task."""
    out = {} if too_long_count is None else {"too_long": too_long_count}
    return out | (asdict(generation) if generation is not None else {})
