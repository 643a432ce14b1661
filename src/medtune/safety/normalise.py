"""Readings of a request that hide it from the screens, undone before screening: base64, hex and URL-encoded spans
decoded, leetspeak and look-alike letters turned back into letters, a fiction, role-play, hypothetical or research
framing taken off (the request inside is what is judged), and a transcript pasted into one message split into its
turns. The layer screens the text as written and each reading; a reading that decides names how it was
read ("after decoding base64"), so the log says why a request that looked harmless was refused.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

BASE64 = re.compile(r"(?<![A-Za-z0-9+/=])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])")
# hex bytes as "486f77", "48 6f 77", "48:6f", "\\x48\\x6f" or "0x48 0x6F"
HEX = re.compile(r"(?<![0-9A-Za-z])(?:(?:\\x|0x)?[0-9a-fA-F]{2}[\s:,]?){8,}(?![0-9A-Za-z])")
URL_ENCODED = re.compile(r"\S*(?:%[0-9a-fA-F]{2}\S*){2,}")
# digits and signs written for letters, next to letters ("h0w m4ny p1lls"), but not doses and codes ("5mg", "B12")
LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$!]*[a-zA-Z][013457@$]|[\w@$!]*[013457@$][a-zA-Z])[\w@$!]+")
# 5mg, 10ml; B12, CD4, HbA1c; units mm3, cm2, m2
CODE_OR_DOSE = re.compile(r"^(?:\d+[a-zA-Z]{1,3}|[A-Z][A-Za-z]{0,3}\d+[a-z]?|[a-z]{1,3}[23]|0x[0-9a-fA-F]+)$")
# Cyrillic and Greek letters that look like Latin ones; NFKC folds full-width and mathematical letters
LOOK_ALIKES = str.maketrans("аеорсухіјԁɡոѕһӏԛԝνοκαειηρτυχΑΒЕНКМОРСТХΙΚΜΝΟΡΤΥΧ",
                            "aeopcyxijdgnshlqwvokaeinptuxABEHKMOPCTXIKMNOPTYX")
# a look-alike reading is made only where the text has such letters: full-width or mathematical letters, or a
# Cyrillic or Greek look-alike beside Latin letters in one word (not "37.1ºC", "µU/mL", "℃" or a ligature)
DISGUISED = re.compile(r"[\uff21-\uff3a\uff41-\uff5a]|[\U0001d400-\U0001d7ff]|"
                       r"(?=\w*[a-zA-Z])(?=\w*[аеорсухіјԁɡոѕһӏԛԝνοκαειηρτυχΑΒЕНКМОРСТХΙΚΜΝΟΡΤΥΧ])\w+")
ROLE_LABEL = re.compile(r"(?im)^\s*(user|human|patient|assistant|ai|bot|system)\s*:\s*")
USER_ROLES = ("user", "human", "patient")

# What wraps a request without changing what it asks for: fiction, role-play, "hypothetically", "for a paper", in
# English, Spanish, French, German, Portuguese and Italian. Taken off, with a character's "how would the killer ..."
# read as the asker's own ("how would I ..."), the request inside meets the rules and the classifier as if asked
# plainly; a story about a heart attack's symptoms stays a question about symptoms.
FICTION = (r"(?:novel|story|short story|book|screenplay|thriller|fanfic|crime novel|mystery novel|novela|historia|"
           r"cuento|guion|roman|histoire|r[ée]cit|geschichte|krimi|drehbuch|romance|hist[óo]ria|roteiro|romanzo|"
           r"racconto|sceneggiatura)")
STUDY = (r"(?:paper|thesis|dissertation|essay|research paper|review article|assignment|podcast|tesis|trabajo|"
         r"m[ée]moire|th[èe]se|hausarbeit|arbeit|disserta[çc][ãa]o|trabalho|tesina|ricerca)")
DETERMINER = (r"(?:a|an|the|my|our|mi|una?|mon|ma|un|une|meine[mnr]?|einen?|einer|il mio|la mia|um|uma|o meu|"
              r"a minha|minha|meu)")
FRAMING = [re.compile(p, re.IGNORECASE) for p in (
    # "for my novel (i'm writing)", "in my story", "for a paper", "para mi novela", "pour mon roman", "für meinen
    # Krimi": not a game or a film, where "killing" is the game's ("how do I kill the boss in a video game")
    r"\b(?:for|in|para|en|pour|dans|für|per|nel|nella|na|no|num|numa)\s+" + DETERMINER + r"\s+(?:\w+\s+)?" + FICTION +
    r"\b(?:\s+(?:i'?m|i am|we'?re)\s+(?:writing|working on))?[\s,:;.-]*",
    r"\b(?:for|para|pour|für|per)\s+" + DETERMINER + r"\s+(?:\w+\s+)?" + STUDY +
    r"\b(?:\s+(?:i'?m|i am|we'?re)\s+(?:writing|working on|doing))?[\s,:;.-]*",
    r"\b(?:purely |just |strictly )?(?:hypothetically|theoretically|in theory|hypothetical(?:ly)? speaking|"
    r"asking for a friend|just curious|out of curiosity|for (?:educational|academic|research) purposes(?: only)?|"
    r"hipot[ée]ticamente|te[óo]ricamente|en teor[ií]a|hypoth[ée]tiquement|th[ée]oriquement|en th[ée]orie|"
    r"hypothetisch|theoretisch|rein theoretisch|ipoteticamente|teoricamente|in teoria)\b[\s,:;.-]*",
    # role-play set-ups: the sentence that casts the assistant or asks to stay in character
    r"(?:^|(?<=[.!?\n]))\s*(?:pretend|imagine|suppose|let'?s say|act as|roleplay|role-play|you are now|you're now|"
    r"from now on|ignore (?:all |your )?(?:previous |prior )?(?:instructions|rules)|stay in character|"
    r"you are (?:dan|an? (?:unrestricted|unfiltered|evil|rogue)))[^.!?\n]*[.!?\n]",
    # "(write a scene where) the character explains (exactly) how ..."
    r"\b(?:write|describe|tell|give me)\s+(?:a |an |the )?(?:scene|story|dialogue|monologue|chapter|passage)\s+"
    r"(?:where|in which)\s+",
    r"\b(?:in (?:a|the) (?:fictional|hypothetical) (?:world|scenario|setting|universe)|in a world where)\b[^,.]*[,.]?",
)]
CHARACTER = re.compile(r"\b(?:the|my|our|his|her)\s+(?:character|villain|killer|murderer|protagonist|hero(?:ine)?|"
                       r"narrator|antagonist|detective|poisoner|nurse character|doctor character)\b"
                       r"(?:\s+(?:explains|describes|tells|says|shows)\s+(?:exactly\s+|in detail\s+)?)?", re.IGNORECASE)


@dataclass(frozen=True)
class Reading:
    text: str
    how: str  # "as written", "after decoding base64", ...


@functools.lru_cache(maxsize=512)
def readings(text: str) -> tuple[Reading, ...]:
    """The text as written, then every other reading that differs from it (each once). A text with encoded spans
    gets no leetspeak reading: its digits are the encoding's, and the decoded readings are what it says. (Kept for
    the next call: the layer reads a turn's readings more than once, and a conversation's turns come back with
    each request.)"""
    out = [Reading(text, "as written")]
    decoded = [("after decoding base64", _decoded(text, BASE64, _from_base64)),
               ("after decoding hex", _decoded(text, HEX, _from_hex)),
               ("after decoding URL escapes", _decoded(text, URL_ENCODED, _from_url))]
    unleeted = None if any(read for _, read in decoded) else _unleeted(_plain_letters(text))
    for how, read in (*decoded,
                      ("after undoing look-alike letters", _plain_letters(text)),
                      ("after undoing leetspeak", unleeted),
                      ("after taking off its framing", _unframed(text))):
        if read and read != text and all(read != r.text for r in out):
            out.append(Reading(read, how))
    return tuple(out)


# readings that say all the text says, in plain letters: where there is one, the classifier reads it and not the
# text as written (an encoder reads "d0s3 m4x" or a base64 span as noise, and scored a leetspeak question about
# paracetamol's maximum dose as unsafe); the rules read every reading
PLAIN = ("after decoding base64", "after decoding hex", "after decoding URL escapes",
         "after undoing look-alike letters", "after undoing leetspeak")


def for_classifier(found: Sequence[Reading]) -> list[Reading]:
    """The readings the classifier reads: all but the text as written, where a plain reading of it exists."""
    if any(r.how in PLAIN for r in found):
        return [r for r in found if r.how != "as written"]
    return list(found)


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
        return bytes.fromhex(re.sub(r"\\x|0x|[\s:,]", "", span)).decode("utf-8")
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
    return word if CODE_OR_DOSE.match(word) or len(word) > 20 else word.translate(LEET)  # > 20: an id, a key


def _unframed(text: str) -> str | None:
    """The text without its fiction, role-play, hypothetical or research framing, a character read as the asker;
    None where there is no framing."""
    out = text
    for pattern in FRAMING:
        out = pattern.sub(" ", out)
    if out == text:
        return None
    out = CHARACTER.sub(lambda m: "I " if not m.group().lower().rstrip().endswith(("explains", "describes", "tells",
                                                                                    "says", "shows", "exactly",
                                                                                    "detail")) else "", out)
    return re.sub(r"\s+", " ", out).strip() or None


def _plain_letters(text: str) -> str:
    """Look-alike letters turned Latin, where the text has disguised letters at all (else the text unchanged)."""
    if not DISGUISED.search(text):
        return text
    return unicodedata.normalize("NFKC", text).translate(LOOK_ALIKES)
