"""The page's sampling sliders as plain data: each one sets a config field, follows that field's rule in
config.RANGES (the one source of ranges) and ends where its slider ends. A value sent to the page's API outside
them is refused with a message naming the field and its range, not a traceback.

    temperature, max_tokens = page_settings(context_length=2048, max_tokens=512)
    temperature.check(-1)   # ValueError: Temperature must be 0 (greedy) or more (generation.temperature) ...
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medtune.config import RANGES

TEMPERATURE_END = 2.0  # the slider's end: sampling hotter than this writes noise


@dataclass(frozen=True)
class Setting:
    label: str  # as the page shows it
    key: str  # the config field it sets, whose rule in config.RANGES it follows
    minimum: float  # the slider's span, inside that rule (a test checks it)
    maximum: float
    whole: bool = False  # a count of tokens: a whole number

    @property
    def rule(self) -> tuple:
        """(test, what the value must be) of the field, from config.RANGES."""
        return next((ok, text) for key, ok, text in RANGES if key == self.key)

    def check(self, value) -> float | int:
        """The value as the number the field takes; ValueError naming the field and its range otherwise."""
        ok, _ = self.rule
        number = _number(value)
        if number is None or (self.whole and not number.is_integer()) or not ok(number) \
                or not self.minimum <= number <= self.maximum:
            raise ValueError(f"{self.describe()}; got {value!r}")
        return int(number) if self.whole else number

    def describe(self) -> str:
        _, text = self.rule
        whole = "a whole number, " if self.whole else ""
        return f"{self.label} must be {whole}{text} ({self.key}) and at most {self.maximum:g} (the slider's end)"


def _number(value) -> float | None:
    """A finite int or float (not a bool, not text) as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def page_settings(context_length: int | None, max_tokens: int) -> tuple[Setting, Setting]:
    """(temperature, max tokens): the answer's budget reaches the model's context window (or the configured
    budget, when that is larger or the window unknown)."""
    return (Setting("Temperature", "generation.temperature", 0.0, TEMPERATURE_END),
            Setting("Max tokens", "generation.max_tokens", 1, max(context_length or max_tokens, max_tokens),
                    whole=True))
