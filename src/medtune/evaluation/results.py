"""An evaluation's results, typed: what results.json holds, and the one place it is written and read (its layout and
field names are those earlier medtune versions wrote, so their evaluations still load in `compare`).

    {created, medtune, mode, mcq_format, seed, judge, config,
     systems: {label: {model, adapter, name, load_s, warm_up_s, [engine, quant] (screen mode: layers, threshold),
                       tasks: {task: {kind, origin, seconds, items_per_s, metrics}}}},
     paired: {task: tuned minus base}}

`metrics` is the task kind's summary (tasks/: MCQSummary, OpenSummary, SafetySummary), read back by its kind.
`engine` and `quant` are written for a system that did not run on transformers (llama.cpp and its GGUF file's
quantization, vllm): compare reuses a stored evaluation only when it ran on the engine compare is asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from medtune.errors import MedtuneError


@dataclass
class TaskResult:
    kind: str  # the task class's kind: mcq, open, safety
    origin: str  # where its items came from
    seconds: float
    items_per_s: float
    metrics: object = None  # the kind's summary dataclass

    def to_json(self) -> dict:
        out = {"kind": self.kind, "origin": self.origin, "seconds": self.seconds, "items_per_s": self.items_per_s}
        return out | ({"metrics": self.metrics.to_json()} if self.metrics is not None else {})

    @classmethod
    def from_json(cls, data: dict) -> TaskResult:
        from medtune.evaluation.tasks import KINDS

        metrics = data.get("metrics")
        summary = KINDS[data["kind"]].Summary.from_json(metrics) if metrics is not None else None
        return cls(data["kind"], data.get("origin", ""), data["seconds"], data.get("items_per_s", 0.0), summary)


@dataclass
class SystemResult:
    """One system evaluated: its model (and adapter), and per task its result. Screen mode's system is the safety
    layer alone: no model, its layers and threshold instead of load times."""

    model: str | None
    adapter: str | None
    name: str
    load_s: float | None = None
    warm_up_s: float | None = None
    layers: list | None = None
    threshold: float | None = None
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    # what generated and scored: transformers (what results without the field were made with), llama.cpp or vllm;
    # quant: the GGUF file's quantization under llama.cpp (f16, q8_0, ...), else None
    engine: str = "transformers"
    quant: str | None = None

    def to_json(self) -> dict:
        out = {"model": self.model, "adapter": self.adapter, "name": self.name}
        out |= ({"layers": self.layers, "threshold": self.threshold} if self.layers is not None
                else {"load_s": self.load_s, "warm_up_s": self.warm_up_s})
        if self.engine != "transformers" or self.quant:  # absent: transformers, as every earlier results.json
            out |= {"engine": self.engine, "quant": self.quant}
        return out | {"tasks": {name: t.to_json() for name, t in self.tasks.items()}}

    @classmethod
    def from_json(cls, data: dict) -> SystemResult:
        return cls(data.get("model"), data.get("adapter"), data.get("name", ""), data.get("load_s"),
                   data.get("warm_up_s"), data.get("layers"), data.get("threshold"),
                   {name: TaskResult.from_json(t) for name, t in data.get("tasks", {}).items()},
                   data.get("engine") or "transformers", data.get("quant"))

    @property
    def engine_label(self) -> str:
        """transformers, vllm, or llama.cpp with its quantization (llama.cpp f16)."""
        return f"{self.engine} {self.quant}" if self.quant else self.engine


@dataclass
class EvalResults:
    created: str
    medtune: str
    mode: str
    mcq_format: str
    seed: int
    judge: dict | None
    config: dict
    systems: dict[str, SystemResult]
    paired: dict[str, dict]  # task -> its kind's tuned-minus-base figures (Task.paired)

    def to_json(self) -> dict:
        return {"created": self.created, "medtune": self.medtune, "mode": self.mode, "mcq_format": self.mcq_format,
                "seed": self.seed, "judge": self.judge, "config": self.config,
                "systems": {label: s.to_json() for label, s in self.systems.items()}, "paired": self.paired}

    @classmethod
    def from_json(cls, data: dict) -> EvalResults:
        return cls(data.get("created", ""), data.get("medtune", ""), data.get("mode", "loglik"),
                   data.get("mcq_format", "letters"), data.get("seed", 0), data.get("judge"), data.get("config") or {},
                   {label: SystemResult.from_json(s) for label, s in data.get("systems", {}).items()},
                   data.get("paired") or {})

    def kinds(self) -> dict[str, str]:
        """task -> kind, over every system."""
        return {name: t.kind for s in self.systems.values() for name, t in s.tasks.items()}


def write_results(path: Path, results: EvalResults) -> None:
    path.write_text(json.dumps(results.to_json(), indent=2, ensure_ascii=False, default=str) + "\n",
                    encoding="utf-8")


def read_results(path: Path) -> EvalResults | None:
    """results.json as EvalResults (None: no file); one that cannot be read is one error naming it."""
    if not path.is_file():
        return None
    try:
        return EvalResults.from_json(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError) as e:
        raise MedtuneError(f"{path}: not a results.json medtune eval wrote ({type(e).__name__}: {e})") from None
