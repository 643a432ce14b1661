"""Letter extraction from generated answers: the forms models write, ambiguity, and option text."""

import pytest

from medtune.evaluation.extract import extract_letter

OPTIONS = {"A": "Hypertension", "B": "Diabetes mellitus", "C": "Sarcoidosis", "D": "Tuberculosis"}


@pytest.mark.parametrize("answer, letter", [
    ("The answer is C", "C"),
    ("the answer is C.", "C"),
    ("Answer: C", "C"),
    ("Final answer: (C)", "C"),
    ("The correct answer is **C. Sarcoidosis**", "C"),
    ("The correct option is (C)", "C"),
    ("Answer - C", "C"),
    ("So I choose option C.", "C"),
    ("C", "C"),
    ("C.", "C"),
    ("(C)", "C"),
    ("**C**", "C"),
    ("C) Sarcoidosis", "C"),
    ("C. Sarcoidosis is the most likely diagnosis.", "C"),
    ("C: Sarcoidosis", "C"),
    ("Given the bilateral hilar adenopathy, **C** fits best.", "C"),
    ("Bilateral hilar adenopathy points to sarcoidosis (C).", "C"),
    ("The most likely diagnosis is sarcoidosis.", "C"),
    ("SARCOIDOSIS", "C"),
    ("Option A is tempting, but the answer is C.", "C"),
    ("The answer is A, not C.", "A"),
    ("The answer is C. Option A is wrong.", "C"),
    ("\\boxed{C}", "C"),
    ("$\\boxed{C}$", "C"),
    ("so the final answer is $\\boxed{\\text{C}}$.", "C"),
    ("the answer is c", "C"),  # lower case right after an explicit 'answer is', ending the sentence
    ("The answer is c.", "C"),
    ("Option A is tempting, but the answer is c.", "C"),
    ("Option C", "C"),
    ("Option C is correct", "C"),
    ("C is correct", "C"),
    ("A is incorrect; C is correct.", "C"),
    ("Therefore, C.", "C"),
    ("The most likely diagnosis is C", "C"),
])
def test_extracts(answer, letter):
    assert extract_letter(answer, OPTIONS) == letter


@pytest.mark.parametrize("answer", [
    "",
    "   ",
    "I am not sure.",
    "A 45-year-old man with cough",  # an article, not a letter
    "It could be (A) or (C).",  # two different letters: ambiguous
    "Either hypertension or sarcoidosis.",  # two option texts: ambiguous
    "The answer is E",  # not among the options
    "the answer is a benign process",  # lower case after 'answer is' is a word unless it ends the sentence
    "I think a biopsy is needed.",  # a lone lower-case 'a' in prose is an article
    "Vitamin A is the best source here.",  # 'is correct/best' needs the letter to open a sentence or follow 'option'
    "Option A or option C, hard to say.",  # two options named: ambiguous
    "It is A patient-specific choice",  # a letter that does not end the sentence concludes nothing
])
def test_unparseable(answer):
    assert extract_letter(answer, OPTIONS) is None


def test_option_text_inside_a_longer_option_counts_once():
    options = {"A": "paralysis of the facial muscles.", "B": "paralysis of the facial muscles and loss of taste."}
    assert extract_letter("It causes paralysis of the facial muscles and loss of taste", options) == "B"
    assert extract_letter("Only paralysis of the facial muscles.", options) == "A"


def test_short_option_text_matches_whole_words_only():
    options = {"A": "yes", "B": "no", "C": "maybe"}
    assert extract_letter("No.", options) == "B"
    assert extract_letter("It is not known", options) is None
    assert extract_letter("Yes, endosonography is valuable.", options) == "A"


def test_any_number_of_options_and_keys():
    options = {k: f"option {k}" for k in "ABCDEFGHIJ"}
    assert extract_letter("The answer is J", options) == "J"
    assert extract_letter("(H)", options) == "H"
    assert extract_letter("The answer is K", options) is None
