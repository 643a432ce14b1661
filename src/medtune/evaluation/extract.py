"""The answer letter of a generated multiple-choice answer (the text after </think>), or None.

Patterns are tried from the most to the least explicit; a pattern that finds two different letters is
ambiguous and passes to the next one. An answer nothing matches counts as wrong and is counted apart.
"""

from __future__ import annotations

import re

_OPEN = r"[\s(\[*_]*"  # what may sit before a letter: spaces, brackets, markdown emphasis
_CLOSE = r"[\s)\]*_.:]*"
_ENDS = r"(?=[ \t)\]*_]*(?:[.,;:!?\n]|$))"  # the letter ends the sentence: "... is C." but not "... is A patient"


def extract_letter(answer: str, options: dict[str, str]) -> str | None:
    """'\\boxed{C}', 'The answer is C', 'C is correct', 'C.', '(C)', '**C**', 'C) text', 'Therefore, C.',
    'Option C' or the option's own text -> 'C'; else None."""
    text = answer.strip()
    if not text or not options:
        return None
    letters = _letters_pattern(options)
    stated = _boxed(text, letters) or _explicit(text, letters) or _explicit_lower(text, options)
    if stated is not None:
        return stated
    for find in (_verdict, _alone, _leading, _bold, _parenthesised, _concluding, _option_named):
        letter = find(text, letters)
        if letter is not None:
            return letter
    return _by_option_text(text, options)


def _letters_pattern(options: dict[str, str]) -> str:
    # longest first, so a key such as "AB" wins over "A"
    return "|".join(re.escape(k) for k in sorted(options, key=len, reverse=True))


def _boxed(text: str, letters: str) -> str | None:
    """LaTeX final answers: '\\boxed{C}', '$\\boxed{C}$', '\\boxed{\\text{C}}', '\\boxed{(C) ...}'; the last wins."""
    found = re.findall(rf"\\boxed\{{\s*(?:\\text(?:bf)?\{{\s*)?\(?({letters})(?![\w'])", text)
    return found[-1] if found else None


_VERB = r"(?:\s+(?i:is|would be|will be|should be|must be))?\s*[:=\-–]?\s*"
_LEAD = (rf"(?:(?i:answer)s?{_VERB}(?i:option\s+|choice\s+)?"
         rf"|(?i:correct|best|right|final)\s+(?i:option|choice){_VERB}"
         rf"|(?i:choose|select|pick)\s+(?i:option\s+)?)")


def _explicit(text: str, letters: str) -> str | None:
    """'answer is C', 'Answer: (C)', 'correct option is **C**', 'I choose C': the last such statement wins."""
    found = re.findall(rf"{_LEAD}{_OPEN}({letters})(?![\w'])", text)
    return found[-1] if found else None


def _explicit_lower(text: str, options: dict[str, str]) -> str | None:
    """'the answer is c': a lower-case letter counts only right after an explicit lead and when it ends the
    sentence, so 'the answer is a benign cyst' (an article) stays unparsed."""
    lower = {k.lower(): k for k in options if len(k) == 1 and k.isupper() and k.lower() not in options}
    if not lower:
        return None
    found = re.findall(rf"{_LEAD}{_OPEN}([{''.join(lower)}]){_ENDS}", text)
    return lower[found[-1]] if found else None


def _verdict(text: str, letters: str) -> str | None:
    """'C is correct', 'Option C is correct', 'Therefore, (C) is the right answer', when they all name one letter.
    The letter opens a sentence or follows 'option': 'Vitamin A is the best source' names no option."""
    start = r"(?:^|[.!?;:,]\s+|\n\s*|\b(?i:option|choice|so|thus|hence|therefore)\s+)"
    return _unique(re.findall(rf"{start}[(\[*_]*({letters}){_CLOSE}\s*(?i:is|would be)\s+(?i:the\s+)?"
                              rf"(?i:correct|right|best)\b", text))


def _concluding(text: str, letters: str) -> str | None:
    """'Therefore, C.', 'So the answer: C', 'The most likely diagnosis is C': a conclusion ending on the letter;
    the last one wins."""
    found = re.findall(rf"(?:\b(?i:therefore|thus|hence|so)\s*,?|\b(?i:is))\s+{_OPEN}({letters}){_ENDS}", text)
    return found[-1] if found else None


def _option_named(text: str, letters: str) -> str | None:
    """'Option C', 'choice (C)' anywhere, when every such mention names one letter."""
    return _unique(re.findall(rf"\b(?i:option|choice)\s+{_OPEN}({letters})(?![\w'])", text))


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
