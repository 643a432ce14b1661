"""One completion scored with no run directory, engine or file (evaluation/scoring.py), as the RL stage will call
it: the same functions the evaluation scores its records with."""

import json

import numpy as np
import pytest

from medtune.evaluation import scoring
from medtune.evaluation.judge import CRITERIA
from medtune.evaluation.tasks import MCQExample, MCQTask

ITEM = MCQExample("q1", "Which vitamin deficiency causes scurvy?", {"A": "Vitamin A", "B": "Vitamin C"}, "B", "t:1")


@pytest.mark.parametrize("completion, ok", [
    ("<think>Collagen needs ascorbate.</think>The answer is B", True),
    ("<think>Collagen needs ascorbate.", False),  # never closed: no answer
    ("<think></think>The answer is B", False),  # no reasoning
    ("<think>Collagen.</think>   ", False),  # no answer
    ("The answer is B", False),  # no reasoning block at all
])
def test_format_ok(completion, ok):
    assert scoring.format_ok(completion) is ok


def test_mcq_choice_reads_the_answer_after_the_reasoning():
    assert scoring.mcq_choice("<think>Not A, since...</think>The answer is B", ITEM.options) == "B"
    assert scoring.mcq_choice("<think>The answer is A? no.", ITEM.options) is None  # the answer never came
    assert scoring.mcq_correct("<think>x</think>**B**", ITEM) and not scoring.mcq_correct("Vitamin A", ITEM)
    # the evaluation's own scoring of an answer gives the same verdict
    assert MCQTask("t", [ITEM], "here").score_answer(ITEM, "The answer is B")["correct"] is True


class Embedder:
    """sentence-transformers' encode(), on fixed vectors: one word, one direction."""

    def encode(self, texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True):
        vectors = {"scurvy": [1.0, 0.0], "rickets": [0.0, 1.0]}
        return np.array([vectors.get((t.split() or [""])[-1].lower().strip("."), [0.6, 0.8]) for t in texts])


def test_similarity_scores_the_answer_part_and_an_empty_answer_zero():
    scores = scoring.similarity(["<think>r</think>It is scurvy.", "<think>r</think>Rickets.", "<think>never closed"],
                                ["Scurvy", "Scurvy", "Scurvy"], Embedder())
    assert scores == pytest.approx([1.0, 0.0, 0.0])


def test_judge_scores_one_answer_through_any_reply_function():
    asked = []

    def reply_for(messages):
        asked.append(messages)
        return json.dumps({c: 4 for c in CRITERIA} | {"rationale": "fine"})

    verdict = scoring.judge_scores("Antidote for paracetamol?", "<think>NAC.</think>Acetylcysteine.",
                                   "N-acetylcysteine.", reply_for)
    assert verdict["scores"] == {c: 4 for c in CRITERIA} and len(asked) == 1
    prompt = json.dumps(asked[0])
    assert "Acetylcysteine." in prompt and "N-acetylcysteine." in prompt
