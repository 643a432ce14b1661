"""Verifiable problems: questions with a reference answer a reward can check, in two layouts.

- `mcq`: exam questions in the evaluation schema (`question`, `options` {letter: text}, `answer` a letter), as the
  MedQA / MedMCQA train splits come; options as a list are lettered A, B, ..., and an answer that is one option's
  text names its letter. The user turn is the question as `medtune eval --mode generate` asks it (the
  same instruction, question and lettered options), so a reward and the evaluation read answers to the same prompt.
- `verifiable`: open problems with a short reference (`Open-ended Verifiable Question` / `Ground-True Answer`, the
  column names of the Hub dataset FreedomIntelligence/medical-o1-verifiable-problem).

Both become ordinary Records (the user turn, and an assistant turn holding the reference answer), so loading, dedup,
the seeded split, the leakage check and the token audit are the SFT path's; the reference goes with the record in
`meta["verifiable"]` (a Reference) for the RL stage's rewards.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from medtune.data.records import Message, Record
from medtune.errors import DataError

MCQ_INSTRUCTION = (
    "Answer the following multiple-choice question. Think it through step by step, then give the final answer "
    "as 'The answer is X', where X is the letter of the correct option."
)
OPEN_QUESTION, OPEN_ANSWER = "Open-ended Verifiable Question", "Ground-True Answer"


@dataclass(frozen=True)
class Reference:
    """What a reward checks a completion against."""

    answer: str  # the reference answer's text (an MCQ's gold option text)
    letter: str | None = None  # an MCQ's gold letter
    options: dict = field(default_factory=dict)  # an MCQ's {letter: text}

    def to_row(self) -> dict:
        """The dataset columns TRL hands to each reward function (one list per column)."""
        return {"reference": self.answer, "answer_letter": self.letter or "", "options": dict(self.options)}


def mcq_user_text(question: str, options: dict[str, str]) -> str:
    """The user turn of a multiple-choice question, as evaluation's generate mode writes it."""
    listed = "\n".join(f"{k}. {v}" for k, v in options.items())
    return f"{MCQ_INSTRUCTION}\n\nQuestion: {question}\n\nOptions:\n{listed}"


def is_mcq(keys: set[str], row: dict) -> bool:
    """question + options + answer: the evaluation schema (options {letter: text}, or a list lettered A, B, ...)."""
    options = next((row[k] for k in row if str(k).lower() == "options"), None)
    return {"question", "options", "answer"} <= keys and isinstance(options, (dict, list))


def is_open(keys: set[str]) -> bool:
    return {OPEN_QUESTION.lower(), OPEN_ANSWER.lower()} <= keys


def mcq_record(r) -> Record:
    """r: formats._Row. The gold letter must be one of the options' keys."""
    question = r.text("question")
    options = _options(r)
    letter = _letter(r, options)
    ref = Reference(options[letter], letter, options)
    answer = Message("assistant", f"The answer is {letter}. {options[letter]}")
    return Record([Message("user", mcq_user_text(question, options)), answer], r.source,
                  meta={"verifiable": ref, "question": question})


def open_record(r) -> Record:
    question, reference = r.text(OPEN_QUESTION), r.text(OPEN_ANSWER)
    return Record([Message("user", question), Message("assistant", reference)], r.source,
                  meta={"verifiable": Reference(reference), "question": question})


def _letter(r, options: dict[str, str]) -> str:
    """The gold letter: the answer as a letter, or as the text of one option (lists of options are often keyed so)."""
    answer = r.text("answer")
    if answer in options:
        return answer
    named = [k for k, v in options.items() if v.casefold() == answer.casefold()]
    if len(named) == 1:
        return named[0]
    raise r.error(f"field 'answer' = {answer!r} is not one of the options' letters ({', '.join(options)}) nor the "
                  "text of one option")


def _options(r) -> dict[str, str]:
    raw = r.raw("options")
    if isinstance(raw, list):  # ["text", "text", ...]: lettered A, B, ... as the evaluation lists them
        raw = {chr(ord("A") + i): v for i, v in enumerate(raw)}
    if not isinstance(raw, dict) or len(raw) < 2:
        raise r.error("field 'options' should be an object of at least two {letter: text} pairs, or a list")
    options = {}
    for key, value in raw.items():
        if not isinstance(value, str) or not value.strip():
            raise r.error(f"field 'options.{key}' should be non-empty text")
        options[str(key).strip()] = value.strip()
    return options


def with_reference_columns(record: Record, row: dict) -> Record:
    """A row of another layout that carries `reference` (and for an MCQ `answer_letter` and `options`), as
    prepare writes verifiable problems: the reference goes with the record, so a prepared folder trains GRPO too."""
    keys = {str(k).lower(): k for k in row}
    if "reference" not in keys or "verifiable" in record.meta:
        return record
    reference, letter = row[keys["reference"]], row.get(keys.get("answer_letter", ""), None)
    options = row.get(keys.get("options", ""), None) or {}
    if not isinstance(reference, str) or not reference.strip():
        raise DataError(f"{record.source}: field 'reference' should be non-empty text")
    if not isinstance(options, dict) or (letter and letter not in options):
        raise DataError(f"{record.source}: field 'answer_letter' = {letter!r} is not one of the keys of 'options'")
    record.meta["verifiable"] = Reference(reference.strip(), letter or None, {str(k): v for k, v in options.items()})
    return record


def output_columns(record: Record) -> dict:
    """The reference columns prepare writes beside a verifiable record's row (none for other records)."""
    ref = record.meta.get("verifiable")
    if ref is None:
        return {}
    return {"reference": ref.answer, **({"answer_letter": ref.letter, "options": ref.options} if ref.letter else {})}


def reference_of(record: Record) -> Reference:
    """The record's reference; DataError naming the record when it has none (an SFT layout under the RL stage)."""
    ref = record.meta.get("verifiable")
    if ref is None:
        raise DataError(f"{record.source}: no reference answer for a reward to check: the GRPO stage reads "
                        "verifiable problems (question/options/answer MCQs, or 'Open-ended Verifiable Question' / "
                        "'Ground-True Answer' rows)")
    return ref
