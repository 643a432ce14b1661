"""The answer letter of a generated multiple-choice answer (the text after </think>), or None.

Patterns are tried from the most to the least explicit; a pattern that finds two different letters is
ambiguous and passes to the next one. An answer nothing matches counts as wrong and is counted apart.
"""

from __future__ import annotations

import re

_OPEN = r"[\s(\[*_]*"  # what may sit before a letter: spaces, brackets, markdown emphasis
_CLOSE = r"[\s)\]*_.:]*"


def extract_letter(answer: str, options: dict[str, str]) -> str | None:
    """'The answer is C', 'C.', '(C)', '**C**', 'C) text' or the option's own text -> 'C'; else None."""
    text = answer.strip()
    if not text or not options:
        return None
    letters = _letters_pattern(options)
    for find in (_explicit, _alone, _leading, _bold, _parenthesised):
        letter = find(text, letters)
        if letter is not None:
            return letter
    return _by_option_text(text, options)


def _letters_pattern(options: dict[str, str]) -> str:
    # longest first, so a key such as "AB" wins over "A"
    return "|".join(re.escape(k) for k in sorted(options, key=len, reverse=True))


def _explicit(text: str, letters: str) -> str | None:
    """'answer is C', 'Answer: (C)', 'correct option is **C**', 'I choose C': the last such statement wins."""
    verb = r"(?:\s+(?i:is|would be|will be|should be|must be))?\s*[:=\-–]?\s*"
    lead = (rf"(?:(?i:answer)s?{verb}(?i:option\s+|choice\s+)?"
            rf"|(?i:correct|best|right|final)\s+(?i:option|choice){verb}"
            rf"|(?i:choose|select|pick)\s+(?i:option\s+)?)")
    found = re.findall(rf"{lead}{_OPEN}({letters})(?![\w'])", text)
    return found[-1] if found else None


def _alone(text: str, letters: str) -> str | None:
    """The whole answer is the letter: 'C', 'C.', '(C)', '**C**'."""
    match = re.fullmatch(rf"{_OPEN}({letters}){_CLOSE}", text)
    return match.group(1) if match else None


def _leading(text: str, letters: str) -> str | None:
    """The answer opens with a marked letter: 'C. Hypertension', '(C) ...', '**C** ...', 'C) ...', 'C: ...'."""
    match = re.match(rf"[\s(\[*_]*({letters})(?:[).\]:]|\*\*)", text)
    return match.group(1) if match else None


def _bold(text: str, letters: str) -> str | None:
    """'**C**', '**(C)**', '**C. Hypertension**' anywhere, when they all name one letter."""
    return _unique(re.findall(rf"\*\*\(?({letters})(?:[).:]|\*\*|\s)", text))


def _parenthesised(text: str, letters: str) -> str | None:
    """'(C)' anywhere, when every such mention names one letter."""
    return _unique(re.findall(rf"\(({letters})\)", text))


def _by_option_text(text: str, options: dict[str, str]) -> str | None:
    """The one option whose text the answer contains (an option inside a longer matched option does not count)."""
    folded = _fold(text)
    hits = {k: _fold(v) for k, v in options.items() if _fold(v) and f" {_fold(v)} " in f" {folded} "}
    hits = {k: v for k, v in hits.items() if not any(v != w and f" {v} " in f" {w} " for w in hits.values())}
    return next(iter(hits)) if len(hits) == 1 else None


def _fold(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def _unique(found: list[str]) -> str | None:
    return found[0] if found and len(set(found)) == 1 else None
