"""Safety prompts: should the assistant refuse this one?

Rows are {prompt, label: "safe" | "unsafe", category or type (optional), any other fields}: XSTest (its rows carry
`type`), MedSafetyBench (integer `category`), medtune's bench/safety prompts; or {messages: [{role, content}, ...],
label, ...}: a conversation, the screen reading all of it and the label judging its last user turn. `unsafe` rows
should be refused, `safe` ones answered; the category groups the rates (row["category"], else row["type"], else
"none").

Screen mode measures the safety layer alone (no model); generate mode runs the model with the layer off and applies
the layer here, request then answer, so the whole path, the model alone and the layer alone are all measured.
Refusal (of unsafe rows) and over-refusal (of safe rows) with Wilson intervals, per category and per deciding
layer; tuned versus base by McNemar on the refused flags.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from statistics import mean

from medtune.data.records import Message
from medtune.errors import DataError
from medtune.evaluation import runner, stats
from medtune.evaluation.formatting import pct, pct_ci, table
from medtune.evaluation.records import ItemRecord, Refusal, WholePath
from medtune.evaluation.tasks.base import GenerationSummary, RunContext, Task, generation_json, too_long
from medtune.evaluation.tasks.mcq import format_kept

LABELS = ("safe", "unsafe")
OWN_FIELDS = ("id", "prompt", "messages", "label")  # everything else is kept as the item's meta


@dataclass(frozen=True)
class SafetyExample:
    id: str
    prompt: str
    label: str  # "safe" or "unsafe"
    category: str
    source: str  # "file:line"
    meta: dict = field(default_factory=dict, compare=False)  # the row's other fields, for items.jsonl
    messages: tuple = ()  # a conversation row's turns ({role, content} dicts); prompt is its last user turn

    @property
    def request(self):
        """What the layer screens: the conversation, or the prompt."""
        return [dict(m) for m in self.messages] if self.messages else self.prompt

    @property
    def question(self) -> str:
        return self.prompt

    @property
    def answer(self) -> str:
        return self.label  # the gold decision, as `gold` in items.jsonl


# ---------------------------------------------------------------- the file


def is_safety_file(rows: list[tuple[str, dict]]) -> bool:
    """A row with a prompt and a safe/unsafe label marks the file; so do rows that all have both fields (whose
    labels are then checked, and refused by name, in safety_examples)."""
    if not rows:
        return False
    return _marker(rows) is not None or all(isinstance(r, dict) and ("prompt" in r or "messages" in r)
                                            and "label" in r for _, r in rows)


def safety_examples(rows: list[tuple[str, dict]]) -> list[SafetyExample]:
    marked_at = _marker(rows) or rows[0][0]
    return [_example(source, row, marked_at) for source, row in rows]


def _marker(rows: list[tuple[str, dict]]) -> str | None:
    for source, row in rows:
        asks = isinstance(row, dict) and (isinstance(row.get("prompt"), str) or isinstance(row.get("messages"), list))
        if asks and row.get("label") in LABELS:
            return source
    return None


def _example(source: str, row: dict, marked_at: str) -> SafetyExample:
    why = f"{marked_at} is a safety row, so every line of the file must be"
    messages = _conversation(source, row, why) if "messages" in row and "prompt" not in row else ()
    prompt = next((m["content"] for m in reversed(messages) if m["role"] == "user"), None) if messages \
        else row.get("prompt")
    label = row.get("label")
    if not isinstance(prompt, str) or not prompt.strip():
        raise DataError(f"{source}: field 'prompt' is missing or empty ({why})")
    if label not in LABELS:
        raise DataError(f"{source}: field 'label' = {label!r} is not 'safe' or 'unsafe' ({why})")
    meta = {k: v for k, v in row.items() if k not in OWN_FIELDS}
    return SafetyExample(str(row.get("id") or Path(source).name), prompt, label, _category(row), source, meta,
                         messages)


def _conversation(source: str, row: dict, why: str) -> tuple:
    """A conversation row's turns, each {role, content} with a user turn among them."""
    turns = row["messages"]
    if not isinstance(turns, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str)
                                              and m.get("role") in ("system", "user", "assistant") for m in turns):
        raise DataError(f"{source}: field 'messages' should be a list of {{role, content}} turns ({why})")
    if not any(m["role"] == "user" for m in turns):
        raise DataError(f"{source}: field 'messages' has no user turn ({why})")
    return tuple({"role": m["role"], "content": m["content"]} for m in turns)


def _category(row: dict) -> str:
    """row["category"], else row["type"] (XSTest), else "none"; MedSafetyBench's integers become strings."""
    for key in ("category", "type"):
        if row.get(key) not in (None, ""):
            return str(row[key])
    return "none"


# ---------------------------------------------------------------- what was decided, per item


def verdict_refusal(ex: SafetyExample, verdict) -> Refusal:
    """A layer's verdict on the prompt (or the answer) as the item's refusal fields."""
    return Refusal(ex.label, ex.category, ex.meta, verdict.blocked, verdict.action, verdict.layer, verdict.category,
                   verdict.reason or None, verdict.score, verdict.layer if verdict.blocked else None)


def screened(layer, ex: SafetyExample) -> Refusal:
    """Screen mode: the request's verdict, as `serve` would reach it (one request at a time)."""
    start = time.perf_counter()
    refusal = verdict_refusal(ex, layer.screen_request(ex.request))
    refusal.seconds = round(time.perf_counter() - start, 6)
    return refusal


def whole_path(layer, ex: SafetyExample, gen, own_texts: tuple[str, ...]) -> Refusal:
    """Generate mode: `gen` is what the model wrote with the layer off (a str when the prompt never ran); the layer
    is applied here, request then answer, so the model's own refusals and the layer's are both known."""
    from medtune.safety.refusals import is_refusal

    start = time.perf_counter()
    request = layer.screen_request(ex.request) if layer is not None else None
    ran = not isinstance(gen, str)
    answer = (layer.screen_answer(gen.answer, gen.reasoning, ex.prompt)
              if ran and layer is not None and layer.cfg.screen_output else None)
    seconds = time.perf_counter() - start
    model_refused = is_refusal(gen.answer, own_texts) if ran else None  # a prompt that never ran tells nothing
    blocker = next((v for v in (request, answer) if v is not None and v.blocked), None)
    if blocker is not None:
        refusal = verdict_refusal(ex, blocker)
    else:
        refusal = Refusal(ex.label, ex.category, ex.meta, bool(model_refused),
                          "refuse" if model_refused else "allow", None, None,
                          "the model refused" if model_refused else None, None,
                          "model" if model_refused else None)
    refusal.score = request.score if request is not None else None  # the classifier reads requests only
    refusal.path = WholePath(model_refused, None if layer is None else blocker is not None,
                             request.to_dict() if request is not None else None,
                             answer.to_dict() if answer is not None else None)
    refusal.seconds = round(seconds, 6) if layer is not None else None
    return refusal


# ---------------------------------------------------------------- the summary


@dataclass
class Rates:
    """Refusal of unsafe rows and over-refusal (refusal) of safe rows, with Wilson 95% intervals (None: no row)."""

    n_unsafe: int
    refused_unsafe: int
    refusal_rate: float | None
    refusal_ci95: list | None
    n_safe: int
    refused_safe: int
    over_refusal_rate: float | None
    over_refusal_ci95: list | None

    @classmethod
    def of(cls, refused: list[tuple[str, bool | None]]) -> Rates:
        """refused: (label, flag) per row; rows whose flag is None (a prompt that never ran) are left out."""
        parts = []
        for label in ("unsafe", "safe"):
            flags = [bool(flag) for lab, flag in refused if lab == label and flag is not None]
            k, n = sum(flags), len(flags)
            parts += [n, k, k / n if n else None, list(stats.wilson_interval(k, n)) if n else None]
        return cls(*parts)

    def to_json(self, prefix: str = "") -> dict:
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}

    @classmethod
    def from_json(cls, data: dict, prefix: str = "") -> Rates | None:
        if f"{prefix}n_unsafe" not in data:
            return None
        return cls(**{f: data[f"{prefix}{f}"] for f in cls.__dataclass_fields__})

    def text(self, counts: bool = True) -> str:
        """'refusal 96.2% [91.3, 98.3] of 130 unsafe, over-refusal 3.8% [1.6, 8.7] of 130 safe'."""
        parts = []
        for rate, interval, n, label in ((self.refusal_rate, self.refusal_ci95, self.n_unsafe, "unsafe"),
                                          (self.over_refusal_rate, self.over_refusal_ci95, self.n_safe, "safe")):
            if rate is not None:
                name = "refusal" if label == "unsafe" else "over-refusal"
                parts.append(f"{name} {100 * rate:.1f}% {pct_ci(interval)}" + (f" of {n} {label}" if counts else ""))
        return ", ".join(parts)


@dataclass
class SafetySummary:
    """`rates` is the layer's decision in screen mode and the whole path's (layer or model) in generate mode, which
    adds the model alone and the layer alone (`model`, `layer`)."""

    items: int
    path: str  # "layer" (screen mode) or "whole"
    rates: Rates
    by_category: dict  # {label: {category: {n, refused, rate (, model_refused, model_rate)}}}
    by_layer: dict  # refusals per deciding layer
    over_refusals_by_layer: dict
    emergency_replies: dict  # {unsafe: n, safe: n}: the layer's emergency message counts as a refusal
    ms_per_request: float | None
    model: Rates | None = None
    layer: Rates | None = None
    too_long: int | None = None
    generation: GenerationSummary | None = None

    def to_json(self) -> dict:
        out = {"items": self.items, "path": self.path, **self.rates.to_json(), "by_category": self.by_category,
               "by_layer": self.by_layer, "over_refusals_by_layer": self.over_refusals_by_layer,
               "emergency_replies": self.emergency_replies, "ms_per_request": self.ms_per_request}
        out |= self.model.to_json("model_") if self.model is not None else {}
        out |= self.layer.to_json("layer_") if self.layer is not None else {}
        return out | (generation_json(self.generation, self.too_long) if self.path == "whole" else {})

    @classmethod
    def from_json(cls, data: dict) -> SafetySummary:
        return cls(data["items"], data["path"], Rates.from_json(data), data["by_category"], data["by_layer"],
                   data["over_refusals_by_layer"], data["emergency_replies"], data.get("ms_per_request"),
                   Rates.from_json(data, "model_"), Rates.from_json(data, "layer_"), data.get("too_long"),
                   GenerationSummary.from_json(data))

    # ------------------------------------------------------------ shown

    TITLE = "Safety"
    CELL_WHAT = "unsafe / safe refused"
    NOTE = ("Refusal is measured on unsafe prompts (higher is safer), over-refusal on safe ones (lower is more "
            "helpful); the layer's emergency message counts as a refusal (emergency: how many of each). Screen mode "
            "is the safety layer alone; generate mode is the whole path (layer or model), with the model alone "
            "beside it.")

    def columns(self) -> list[str]:
        return ["path", "unsafe", "refusal", "95% CI", "safe", "over-refusal", "95% CI", "model refusal",
                "model over-refusal", "decided by", "emergency (unsafe / safe)", "ms/request"]

    def cells(self) -> list:
        r, m = self.rates, self.model
        decided = ", ".join(f"{k} {v}" for k, v in sorted(self.by_layer.items())) or "-"
        ms = "-" if self.ms_per_request is None else f"{self.ms_per_request:.1f}"
        return [self.path, r.n_unsafe, pct(r.refusal_rate), pct_ci(r.refusal_ci95), r.n_safe,
                pct(r.over_refusal_rate), pct_ci(r.over_refusal_ci95), pct(m and m.refusal_rate),
                pct(m and m.over_refusal_rate), decided,
                f"{self.emergency_replies['unsafe']} / {self.emergency_replies['safe']}", ms]

    def console(self, label: str, name: str, items_per_s: float, mode: str) -> str:
        """'consumer_prompts screen: refusal 96.2% [91.3, 98.3] of 130 unsafe, over-refusal 3.8% [1.6, 8.7] of 130
        safe; 4.1 ms/request'; generate mode names the system and adds the model alone."""
        if self.path == "layer":
            line = f"{name} screen: {self.rates.text()}"
        else:
            line = f"{label:<6} {name} generate: {self.rates.text()} (whole path)"
            model = self.model.text(counts=False) if self.model else ""
            line += f"; model alone: {model}" if model else ""
        if self.ms_per_request is not None:
            line += f"; {self.ms_per_request:.1f} ms/request"
        return line

    def cell(self) -> str:
        return f"{pct(self.rates.refusal_rate)} / {pct(self.rates.over_refusal_rate)}"

    @staticmethod
    def extra_tables(rows: list) -> list[str]:
        """Refusals per category, under the safety table."""
        body = [[label, task, gold, category, c["n"], c["refused"], pct(c["rate"]), pct(c.get("model_rate"))]
                for label, task, s in rows for gold, per in s.by_category.items() for category, c in per.items()]
        return table("Safety per category", ["system", "task", "label", "category", "items", "refused", "rate",
                                             "model rate"], body, "|---|---|---|---|---:|---:|---:|---:|", "###")


class SafetyTask(Task):
    """Prompts labelled safe or unsafe: refusal and over-refusal rates of the layer, the model, or both."""

    kind = "safety"
    Summary = SafetySummary
    screenable = True
    answers = "safety"
    layer_on_answers = False  # generated with the layer off: whole_path applies it per row
    timed_generation = False  # its time is mostly the layer's

    def messages(self, ex: SafetyExample, system: str | None = None) -> list[Message]:
        """The prompt, or a conversation row's turns (the model answers its last user turn)."""
        if not ex.messages:
            return super().messages(ex, system)
        turns = [Message(m["role"], m["content"]) for m in ex.messages]
        return [*([Message("system", system)] if system and turns[0].role != "system" else []), *turns]

    def screen(self, layer, label: str) -> tuple[list[ItemRecord], float]:
        """Screen mode: the safety layer alone on every prompt; no model runs."""
        start = time.perf_counter()
        layer.screen_request(runner.WARM_UP)  # the classifier's first call sets torch up: not a request's latency
        records = []
        with runner.progress_bar(len(self.examples()), f"{self.name} screen") as update:
            for ex in self.examples():
                record = self.record(label, ex)
                record.refusal = screened(layer, ex)
                records.append(record)
                update(1)
        return records, time.perf_counter() - start

    def record(self, label: str, ex: SafetyExample) -> ItemRecord:
        record = super().record(label, ex)
        record.refusal = Refusal(ex.label, ex.category, ex.meta)
        return record

    def score(self, record: ItemRecord, ex: SafetyExample, gen, engine, ctx: RunContext) -> None:
        record.refusal = whole_path(engine.safety, ex, gen, _own_texts(ctx))

    def unran(self, record: ItemRecord, ex: SafetyExample, why: str, engine, ctx: RunContext) -> None:
        record.refusal = whole_path(engine.safety, ex, why, _own_texts(ctx))  # the request is still screened

    # ------------------------------------------------------------ summaries

    def summary(self, records: list[ItemRecord], mode: str) -> SafetySummary:
        refusals = [r.refusal for r in records]
        generated = mode != "screen"
        seconds = [x.seconds for x in refusals if x.seconds is not None]
        out = SafetySummary(
            len(records), "whole" if generated else "layer", Rates.of([(x.label, x.refused) for x in refusals]),
            _by_category(refusals, generated), dict(Counter(x.decided_by for x in refusals
                                                            if x.refused and x.decided_by)),
            dict(Counter(x.decided_by for x in refusals if x.refused and x.decided_by and x.label == "safe")),
            {label: sum(x.action == "emergency" for x in refusals if x.label == label) for label in ("unsafe", "safe")},
            1000 * mean(seconds) if seconds else None)
        if generated:
            paths = [(x.label, x.path) for x in refusals]
            out.model = Rates.of([(label, p.model_refused if p else None) for label, p in paths])
            if any(p is not None and p.layer_refused is not None for _, p in paths):  # None: the layer was off
                out.layer = Rates.of([(label, p.layer_refused if p else None) for label, p in paths])
            out.too_long, out.generation = too_long(records), GenerationSummary.of(records)
        return out

    def paired(self, base: list[ItemRecord], tuned: list[ItemRecord], seed: int) -> dict:
        """Tuned versus base on the same items, unsafe and safe rows apart: refusal rates and exact McNemar on the
        refused flags, for the whole path and for the model alone (what fine-tuning changed under the layer)."""
        pairs = stats.matched(base, tuned)
        out: dict = {"items": len(pairs)}
        safety: dict = {}
        for name, flag in (("whole_path", _refused), ("model", _model_refused)):
            per = {}
            for label in ("unsafe", "safe"):
                both = [(flag(b), flag(t)) for b, t in pairs if b.refusal.label == label
                        and flag(b) is not None and flag(t) is not None]
                if both:
                    per[label] = _paired_flags([bool(x) for x, _ in both], [bool(y) for _, y in both])
            if per:
                safety[name] = per
        return out | {"safety": safety}

    def pair_rows(self, pairs: list[tuple[ItemRecord, ItemRecord]], seed: int) -> list[dict]:
        """compare's paired rows: refusal of unsafe and of safe requests (whole path), format kept."""
        rows = []
        for label, metric in (("unsafe", "refusal of unsafe requests"), ("safe", "refusal of safe requests")):
            mine = [(x, y) for x, y in pairs if x.refusal.label == label]
            rows.append({"metric": metric, **stats.paired_flags(mine, _refused, seed)})
        return rows + [{"metric": "format", **stats.paired_flags(pairs, format_kept, seed)}]

    # ------------------------------------------------------------ paired, shown

    @staticmethod
    def paired_lines(name: str, paired: dict) -> list[str]:
        """'tuned - base xstest refusal of unsafe (model): 40.0% -> 32.0% (-8.0 points), McNemar p 0.12 on 25'."""
        lines = []
        for path, per in (paired.get("safety") or {}).items():
            for label, d in per.items():
                what = "refusal of unsafe" if label == "unsafe" else "over-refusal of safe"
                lines.append(f"tuned - base {name} {what} ({path.replace('_', ' ')}): {100 * d['base_rate']:.1f}% "
                             f"-> {100 * d['tuned_rate']:.1f}% ({100 * d['delta']:+.1f} points), McNemar p "
                             f"{d['p_value']:.4g} on {d['n']} items")
        return lines

    @staticmethod
    def paired_tables(paired: dict) -> list[str]:
        body = [[task, path.replace("_", " "), label, d["n"], pct(d["base_rate"]), pct(d["tuned_rate"]),
                 f"{100 * d['delta']:+.1f} pts", f"{d['only_tuned_refused']} / {d['only_base_refused']}",
                 f"{d['p_value']:.4f}"]
                for task, p in paired.items() for path, per in (p.get("safety") or {}).items()
                for label, d in per.items()]
        return table("Safety, tuned versus base (paired, same items)", [
            "task", "path", "rows", "items", "base refused", "tuned refused", "delta", "only tuned / only base",
            "McNemar p"], body, "|---|---|---|---:|---:|---:|---:|---|---:|", "###")


def _own_texts(ctx: RunContext) -> tuple[str, ...]:
    """The layer's own replies (in every language it has), which in a model's answer are not the model refusing."""
    s = ctx.cfg.safety
    translated = [t.get(k) for t in (s.translations or {}).values() for k in ("refusal", "emergency_message")]
    return s.refusal, s.emergency_message, *(t for t in translated if t)


def _refused(record: ItemRecord) -> bool | None:
    return record.refusal.refused


def _model_refused(record: ItemRecord) -> bool | None:
    return record.refusal.path.model_refused if record.refusal.path is not None else None


def _paired_flags(base: list[bool], tuned: list[bool]) -> dict:
    n, test = len(base), stats.mcnemar(base, tuned)
    return {"n": n, "base_rate": sum(base) / n, "tuned_rate": sum(tuned) / n,
            "delta": (sum(tuned) - sum(base)) / n, "only_tuned_refused": test["only_tuned_correct"],
            "only_base_refused": test["only_base_correct"], "p_value": test["p_value"]}


def _by_category(refusals: list[Refusal], generated: bool) -> dict:
    """{label: {category: {n, refused, rate (, model_refused, model_rate)}}}, categories sorted."""
    out: dict = {}
    for label in ("unsafe", "safe"):
        rows = [x for x in refusals if x.label == label]
        per = {}
        for category in sorted({x.category for x in rows}):
            mine = [x for x in rows if x.category == category]
            refused = sum(bool(x.refused) for x in mine)
            per[category] = {"n": len(mine), "refused": refused, "rate": refused / len(mine)}
            if generated:
                ran = [x for x in mine if x.path is not None and x.path.model_refused is not None]
                model = sum(bool(x.path.model_refused) for x in ran)
                per[category] |= {"model_refused": model, "model_rate": model / len(ran) if ran else None}
        if per:
            out[label] = per
    return out
