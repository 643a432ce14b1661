"""What a screen decided about one text, and why."""

from __future__ import annotations

from dataclasses import asdict, dataclass

ALLOW, REFUSE, EMERGENCY = "allow", "refuse", "emergency"
ADVISE = "advise"  # an emergency that is no harmful request: the emergency advice first, then the model's answer

CATEGORIES = {  # the categories every layer reports in; MedSafetyBench's nine principles map onto them
    "self_harm": "self-harm and suicide methods",
    "harm_to_others": "harming others: poisoning, covert dosing, violence",
    "controlled_drugs": "obtaining or misusing controlled drugs",
    "diy_procedures": "do-it-yourself surgery and procedures",
    "falsified_records": "falsifying records, notes or prescriptions",
    "unethical_practice": "unethical clinical practice",
    "misinformation": "dangerous health misinformation",
    "illegal_acts": "other crimes and violence",
    "emergency": "a medical emergency happening now",
}


@dataclass(frozen=True)
class Verdict:
    action: str  # ALLOW, REFUSE, EMERGENCY (the emergency message instead of an answer) or ADVISE
    layer: str | None = None  # "rules", "classifier", "guard" (the one that decided); None when allowed
    category: str | None = None
    reason: str = ""  # the rule that matched, the classifier's score, the guard's reply
    score: float | None = None  # the classifier's unsafe probability, when it ran
    stage: str = "request"  # "request" or "answer": which text was screened
    language: str | None = None  # the request's language (language.py), which picks the reply's

    @property
    def blocked(self) -> bool:
        """The model does not answer: the layer's refusal or emergency message instead."""
        return self.action in (REFUSE, EMERGENCY)

    @property
    def advised(self) -> bool:
        """The model answers after the layer's emergency advice."""
        return self.action == ADVISE

    def to_dict(self) -> dict:
        return {k: v for k, v in asdict(self).items() if v is not None}


def allowed(score: float | None = None, stage: str = "request") -> Verdict:
    return Verdict(ALLOW, score=score, stage=stage)
