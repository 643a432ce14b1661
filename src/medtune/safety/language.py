"""Which of the languages the layer has replies for a text is written in: English, Spanish, French, German,
Portuguese or Italian, by counting each language's commonest short words (a request is short; a library model is
not needed to tell these six apart, and none ships offline). Ties and texts with none of them read as English."""

from __future__ import annotations

import re

WORDS = {
    "es": {"el", "la", "los", "las", "de", "que", "y", "en", "un", "una", "por", "para", "con", "cómo", "cuántas",
           "cuántos", "qué", "mi", "es", "no", "se", "me", "lo", "al", "del", "puedo", "quiero", "tengo", "hijo"},
    "fr": {"le", "la", "les", "de", "des", "du", "et", "en", "un", "une", "pour", "avec", "comment", "combien",
           "quel", "quelle", "mon", "ma", "mes", "est", "pas", "je", "me", "il", "elle", "dans", "que", "qui"},
    "de": {"der", "die", "das", "den", "dem", "und", "ist", "ein", "eine", "einen", "mit", "für", "wie", "viele",
           "ich", "mich", "mir", "mein", "meine", "meinen", "nicht", "zu", "von", "kann", "sie", "es", "auf"},
    "pt": {"o", "a", "os", "as", "de", "que", "e", "em", "um", "uma", "por", "para", "com", "como", "quantos",
           "quantas", "meu", "minha", "é", "não", "se", "me", "do", "da", "posso", "quero", "tenho", "filho"},
    "it": {"il", "lo", "la", "gli", "le", "di", "che", "e", "in", "un", "una", "per", "con", "come", "quante",
           "quanti", "mio", "mia", "è", "non", "si", "mi", "del", "della", "posso", "voglio", "ho", "figlio"},
    "en": {"the", "a", "an", "of", "and", "to", "in", "is", "how", "many", "much", "what", "my", "i", "for",
           "with", "can", "do", "it", "not", "you", "me", "on", "be", "should", "would", "take", "child"},
}
LANGUAGES = tuple(WORDS)


def detect(text: str, at_least: int = 1) -> str:
    """'es', 'fr', 'de', 'pt', 'it' or 'en'; another language needs at least `at_least` of its words, and more than
    English has (a model's answer of drug names and fragments stays English: pass a higher at_least for those)."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    counts = {lang: sum(w in vocab for w in words) for lang, vocab in WORDS.items()}
    best = max(counts, key=lambda lang: (counts[lang], lang == "en"))
    return best if counts[best] >= at_least and counts[best] > counts["en"] else "en"
