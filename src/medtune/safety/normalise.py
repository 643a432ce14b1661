"""Readings of a request that hide it from the screens, undone before screening: base64, hex and URL-encoded spans
decoded, leetspeak and look-alike letters turned back into letters, and a transcript pasted into one message split
into its turns. The layer screens the text as written and each reading; a reading that decides names how it was
read ("after decoding base64"), so the log says why a request that looked harmless was refused.
"""

from __future__ import annotations

import base64
import binascii
import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
HEX = re.compile(r"\b(?:[0-9a-fA-F]{2}[\s:]?){8,}\b")
URL_ENCODED = re.compile(r"\S*(?:%[0-9a-fA-F]{2}\S*){2,}")
# digits and signs written for letters, next to letters ("h0w m4ny p1lls"), but not doses and codes ("5mg", "B12")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$!]*[a-zA-Z][013457@$]|[\w@$!]*[013457@$][a-zA-Z])[\w@$!]+")
CODE_OR_DOSE = re.compile(r"^(?:\d+[a-zA-Z]{1,3}|[A-Z][A-Za-z]{0,3}\d+[a-z]?)$")  # 5mg, 10ml; B12, CD4, HbA1c
# Cyrillic and Greek letters that look like Latin ones; NFKC folds full-width and mathematical letters
LOOK_ALIKES = str.maketrans("аеорсухіјԁɡոνοκΑΒЕНКМОРСТХΙΚΜΝΟΡΤΥΧ", "aeopcyxijdgnvokABEHKMOPCTXIKMNOPTYX")
ROLE_LABEL = re.compile(r"(?im)^\s*(user|human|patient|assistant|ai|bot|system)\s*:\s*")
USER_ROLES = ("user", "human", "patient")


@dataclass(frozen=True)
class Reading:
    text: str
    how: str  # "as written", "after decoding base64", ...


def readings(text: str) -> list[Reading]:
    """The text as written, then every other reading that differs from it (each once)."""
    out = [Reading(text, "as written")]
    for how, read in (("after decoding base64", _decoded(text, BASE64, _from_base64)),
                      ("after decoding hex", _decoded(text, HEX, _from_hex)),
                      ("after decoding URL escapes", _decoded(text, URL_ENCODED, _from_url)),
                      ("after undoing look-alike letters", _plain_letters(text)),
                      ("after undoing leetspeak", _unleeted(_plain_letters(text)))):
        if read and read != text and all(read != r.text for r in out):
            out.append(Reading(read, how))
    return out


def pasted_turns(text: str) -> list[str]:
    """The user turns of a transcript pasted into one message ("User: ... Assistant: ... User: ..."), oldest
    first; [] when the text holds no such labels (fewer than two)."""
    labels = list(ROLE_LABEL.finditer(text))
    if len(labels) < 2:
        return []
    turns = []
    for label, following in zip(labels, labels[1:] + [None]):
        body = text[label.end(): following.start() if following else len(text)].strip()
        if label.group(1).lower() in USER_ROLES and body:
            turns.append(body)
    return turns


def _decoded(text: str, pattern: re.Pattern, decode) -> str | None:
    """text with every span the pattern finds replaced by its decoding, where that decoding is readable text."""
    changed = False

    def swap(match: re.Match) -> str:
        nonlocal changed
        plain = decode(match.group())
        if plain is None or not _readable(plain):
            return match.group()
        changed = True
        return plain

    out = pattern.sub(swap, text)
    return out if changed else None


def _from_base64(span: str) -> str | None:
    try:
        return base64.b64decode(span + "=" * (-len(span) % 4), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def _from_hex(span: str) -> str | None:
    try:
        return bytes.fromhex(re.sub(r"[\s:]", "", span)).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return None


def _from_url(span: str) -> str | None:
    plain = unquote(span, errors="strict") if "%" in span else None
    return plain if plain != span else None


def _readable(text: str) -> bool:
    """Mostly letters and spaces: a decoding that is prose, not bytes that happen to decode."""
    shown = [c for c in text if not c.isspace()]
    return len(shown) >= 4 and sum(c.isalpha() for c in shown) / len(shown) >= 0.6 and " " in text.strip()


def _unleeted(text: str) -> str:
    """Leet words back to letters; where there are some, a lone 1 is the word I ("h0w c4n 1 ...")."""
    out = LEET_WORD.sub(_unleet, text)
    return re.sub(r"(?<![\w.,])1(?![\w.,%])", "i", out) if out != text else out


def _unleet(match: re.Match) -> str:
    word = match.group()
    return word if CODE_OR_DOSE.match(word) else word.translate(LEET)


def _plain_letters(text: str) -> str:
    return unicodedata.normalize("NFKC", text).translate(LOOK_ALIKES)
