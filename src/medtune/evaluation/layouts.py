"""Rows of the common multiple-choice layouts -> medtune's one MCQ schema {id, question, options, answer}.

  options   medtune's schema (local task files): {id, question, options: {letter: text} | [text], answer: letter};
            also MedQA on the hub and HuatuoGPT's eval files: answer_idx is the letter, answer the option's text
  medmcqa   openlifescienceai/medmcqa: {id, question, opa, opb, opc, opd, cop}
  mmlu      cais/mmlu: {question, subject, choices: [text, ...], answer: 0-based index}
  pubmedqa  qiaojin/PubMedQA pqa_labeled: {pubid, question, context: {contexts, labels}, final_decision}

A file has one layout, found from the first row that has one; every row is then read in it, so a row that lacks
the layout's fields is an error naming its file, line and field (in the row's own layout), never free text.
"""

from __future__ import annotations

from medtune.errors import DataError

# the key that marks each layout, most specific first
SIGNATURES = (("options", "options"), ("opa", "medmcqa"), ("cop", "medmcqa"), ("choices", "mmlu"),
              ("final_decision", "pubmedqa"))
PUBMEDQA_OPTIONS = {"A": "yes", "B": "no", "C": "maybe"}  # final_decision as a letter, as in a local pubmedqa.jsonl


def detect(rows: list[tuple[str, dict]]) -> tuple[str, str] | None:
    """(layout, source of the first row that has it), or None for a file of open-ended records."""
    for source, row in rows:
        for key, layout in SIGNATURES:
            if key in row:
                return layout, source
    return None


def normalise(layout: str, rows: list[tuple[str, dict]], marked_at: str,
              answer_base: int | None = None) -> list[dict]:
    """Every row as {id, question, options, answer, source}; `marked_at` is the row that made the file MCQ.
    `answer_base` (eval.answer_base): what MedMCQA's cop counts from; None means the hub's layout (see _medmcqa)."""
    read = _READERS[layout]
    context = {"marked_at": marked_at, "cop_base": answer_base}
    return [{**read(source, row, context), "source": source} for source, row in rows]


# ---------------------------------------------------------------- one reader per layout


def _options_layout(source: str, row: dict, context: dict) -> dict:
    if "options" not in row:
        raise DataError(f"{source}: field 'options' is missing ({context['marked_at']} is multiple choice, so every "
                        "line of the file must be)")
    options = _options(source, row["options"])
    if row.get("answer_idx") is not None:  # MedQA hub / HuatuoGPT: the letter, with the option's text as `answer`
        letter = _letter(source, options, row["answer_idx"], "answer_idx")
        text = row.get("answer")
        if isinstance(text, str) and text.strip() and text.strip() not in (letter, options[letter]):
            raise DataError(f"{source}: field 'answer' = {text.strip()!r} is not the text of option {letter} "
                            f"(field 'answer_idx')")
    else:
        letter = _letter(source, options, row.get("answer"), "answer")
    return {"id": row.get("id"), "question": _text(source, row, "question"), "options": options, "answer": letter}


def _medmcqa(source: str, row: dict, context: dict) -> dict:
    """cop counts from 0 in the hub's files and from 1 in the original release. The hub card's prose says "cop:
    Correct option, i.e., 1,2,3,4", but that describes the original JSON: the hub declares cop as
    ClassLabel(names=[a, b, c, d]) and its loading script (openlifescienceai/medmcqa, medmcqa.py, "Add MedMCQA
    dataset (#4064)") did `cop = int(cop) - 1` before the files were converted to Parquet, so on the hub 0 = opa.
    The base is the layout's (0) or the one eval.answer_base declares, never guessed from the values: a 1-based file
    whose answers happen to be 1 to 3 would be shifted by one without a word."""
    options = {letter: _text(source, row, key) for letter, key in zip("ABCD", ("opa", "opb", "opc", "opd"))}
    cop, declared = _integer(source, row, "cop"), context["cop_base"]
    if cop == -1:  # the hub's test split: answers are not public
        raise DataError(f"{source}: field 'cop' = -1: no answer (MedMCQA's test split has none; use validation)")
    if declared is None and cop == 4:  # only a 1-based file has a 4: refuse rather than read every answer one off
        raise DataError(f"{source}: field 'cop' = 4: this MedMCQA file looks 1-based (the original release), but "
                        "cop is read as the hub's 0-based label unless told otherwise; set eval.answer_base=1")
    base = declared or 0
    if not base <= cop < base + 4:
        given = f", eval.answer_base={declared}" if declared is not None else ""
        raise DataError(f"{source}: field 'cop' = {cop} is not an option number ({base} to {base + 3}{given})")
    return {"id": row.get("id"), "question": _text(source, row, "question"), "options": options,
            "answer": "ABCD"[cop - base]}


def _mmlu(source: str, row: dict, context: dict) -> dict:
    choices = row.get("choices")
    if not isinstance(choices, list):
        raise DataError(f"{source}: field 'choices' must be a list of option texts")
    options = _options(source, choices, "choices")
    answer = row.get("answer")
    if isinstance(answer, str) and answer.strip() in options:  # some copies store the letter
        letter = answer.strip()
    else:
        index = _integer(source, row, "answer")
        if not 0 <= index < len(options):
            raise DataError(f"{source}: field 'answer' = {index} is not an index of 'choices' "
                            f"(0 to {len(options) - 1})")
        letter = list(options)[index]
    return {"id": row.get("id"), "question": _text(source, row, "question"), "options": options, "answer": letter}


def _pubmedqa(source: str, row: dict, context: dict) -> dict:
    """The question in the layout of a local pubmedqa.jsonl (tests/data/SOURCES.md shows how that is built):
    "Context:", one "LABEL: paragraph" line per context, a blank line, then "Question: ..."; options yes/no/maybe as
    A/B/C. The long answer (the abstract's conclusion) is left out because it gives the answer away."""
    ctx = row.get("context")
    contexts, labels = (ctx.get("contexts"), ctx.get("labels")) if isinstance(ctx, dict) else (None, None)
    if not isinstance(contexts, list) or not contexts or not all(isinstance(c, str) for c in contexts):
        raise DataError(f"{source}: field 'context.contexts' must be a non-empty list of paragraphs")
    if not isinstance(labels, list) or len(labels) != len(contexts):
        raise DataError(f"{source}: field 'context.labels' must give one label per paragraph of 'context.contexts'")
    decision = str(row.get("final_decision") or "").strip().lower()
    if decision not in PUBMEDQA_OPTIONS.values():
        raise DataError(f"{source}: field 'final_decision' = {row.get('final_decision')!r} is not yes, no or maybe")
    question = _text(source, row, "question")
    body = "\n".join(f"{label}: {text}" for label, text in zip(labels, contexts))
    pubid = row.get("pubid")
    return {"id": f"pubmedqa-pqal-{pubid}" if pubid is not None else None,
            "question": f"Context:\n{body}\n\nQuestion: {question}", "options": dict(PUBMEDQA_OPTIONS),
            "answer": next(k for k, v in PUBMEDQA_OPTIONS.items() if v == decision)}


_READERS = {"options": _options_layout, "medmcqa": _medmcqa, "mmlu": _mmlu, "pubmedqa": _pubmedqa}


# ---------------------------------------------------------------- checked fields


def _text(source: str, row: dict, field: str) -> str:
    value = row.get(field)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)  # an option that is a number ("5 mg" is text, 5 is too)
    if not isinstance(value, str) or not value.strip():
        raise DataError(f"{source}: field '{field}' is missing or empty")
    return value.strip()


def _integer(source: str, row: dict, field: str) -> int:
    value = row.get(field)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise DataError(f"{source}: field '{field}' = {value!r} should be a whole number")
    return value


def _letter(source: str, options: dict, value, field: str) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataError(f"{source}: field '{field}' is missing")
    letter = str(value).strip()
    if letter not in options:
        raise DataError(f"{source}: field '{field}' = {letter!r} is not one of the option letters {', '.join(options)}")
    return letter


def _options(source: str, raw, field: str = "options") -> dict:
    """{letter: text}; a plain list is lettered A, B, C, ...; so is a list of {key, value} pairs (bigbio layouts)."""
    # (the field naming the text, the field naming the letter, the letter, the text): errors name the file's fields
    if isinstance(raw, list) and raw and all(isinstance(o, dict) and {"key", "value"} <= set(o) for o in raw):
        entries = [(f"{field}[{i}].value", f"{field}[{i}].key", o["key"], o["value"]) for i, o in enumerate(raw)]
    elif isinstance(raw, list):  # errors name the list's index, as the file has it
        entries = [(f"{field}[{i}]", f"{field}[{i}]", chr(ord("A") + i), text) for i, text in enumerate(raw)]
    elif isinstance(raw, dict):
        entries = [(f"{field}.{key}", f"{field}.{key}", key, text) for key, text in raw.items()]
    else:
        entries = []
    if len(entries) < 2:
        raise DataError(f"{source}: field '{field}' must map at least two letters to texts, "
                        f'e.g. {{"A": "...", "B": "..."}}')
    options = {}
    for name, key_name, key, text in entries:
        letter = "" if key is None else str(key).strip()
        if not letter:
            raise DataError(f"{source}: field '{key_name}' gives no option letter")
        if isinstance(text, (int, float)) and not isinstance(text, bool):
            text = str(text)
        if not isinstance(text, str) or not text.strip():
            raise DataError(f"{source}: field '{name}' is empty")
        if letter in options:  # "A" and "A " are one letter: keeping either would drop an option unseen
            raise DataError(f"{source}: field '{key_name}': option letter {letter!r} appears twice")
        options[letter] = text.strip()
    return options
