"""How one completion is scored, callable outside an evaluation run: on (prompt, completion, item) with no run
directory, no engine and no files, so that the RL stage can use the evaluation's own scoring as its rewards.

    split(completion)                       reasoning and answer, as the engine splits a generation
    format_ok(completion)                   reasoning present and closed, then an answer
    mcq_choice(completion, options)         the letter the answer names, or None
    mcq_correct(completion, item)           that letter is the item's gold letter
    names_reference(completion, reference)  the answer names the reference's words
    similarity(completions, references, embedder)   cosine similarity of each answer to its reference
    judge_scores(prompt, completion, reference, reply_for)   the judge's criteria scores for one answer

The evaluation calls the same functions on the engine's Generation (whose split is already made), so a reward
and an evaluation score of the same text are equal.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from medtune.evaluation.extract import extract_letter
from medtune.inference.reasoning import Split, split_output


def split(completion: str, opened: bool = False) -> Split:
    """The completion's reasoning (None without a think block) and answer; opened: the prompt already opened
    <think> (the completion starts inside the reasoning)."""
    return split_output(completion, opened)


def format_ok(completion: str | Split, opened: bool = False) -> bool:
    """The layout medtune trains: a reasoning block, closed, then a non-empty answer."""
    parts = completion if isinstance(completion, Split) else split(completion, opened)
    return bool((parts.reasoning or "").strip()) and parts.reasoning_finished and bool(parts.answer.strip())


def mcq_choice(completion: str | Split, options: dict[str, str]) -> str | None:
    """The option letter the answer (the text after </think>) names, or None when it names none clearly."""
    answer = completion.answer if isinstance(completion, Split) else split(completion).answer
    return extract_letter(answer, options)


def names_reference(completion: str | Split, reference: str) -> bool:
    """The answer contains the reference's words in order (case, white space and edge punctuation folded): "The
    drug is cefaclor, a ..." names "Cefaclor."."""
    answer = completion.answer if isinstance(completion, Split) else split(completion).answer
    wanted = _folded(reference)
    return bool(wanted) and f" {wanted} " in f" {_folded(answer)} "


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", text).split()).casefold()


def mcq_correct(completion: str | Split, item) -> bool:
    """The answer names the item's gold letter (item: an MCQ item with `options` and `answer`)."""
    return mcq_choice(completion, item.options) == item.answer


def similarity(completions: list[str | Split], references: list[str], embedder) -> list[float]:
    """Cosine similarity of each answer (the text after </think>) to its reference; an empty answer scores 0.
    embedder: a sentence-transformers model (medtune.embedder.load_embedder)."""
    from medtune.evaluation.similarity import similarities

    answers = [c.answer if isinstance(c, Split) else split(c).answer for c in completions]
    return similarities(embedder, answers, references)


def judge_scores(prompt: str, completion: str | Split, reference: str, reply_for: Callable[[list[dict]], str],
                 item_id: str = "item") -> dict:
    """The judge's verdict on one answer: {"scores": {criterion: 1-5, ...}} or {"failed": reason}. reply_for takes
    chat messages and returns the judge's reply (an endpoint's or a local model's)."""
    from medtune.evaluation.judge import JudgeItem, judgment

    parts = completion if isinstance(completion, Split) else split(completion)
    return judgment(reply_for, JudgeItem(item_id, prompt, reference, parts.answer, parts.reasoning))
