"""Reasoning split: <think> blocks apart from the answer, all at once and streamed in any chunking."""

import pytest

from medtune.data.templates import R1_ANSWER_HEADER
from medtune.inference.reasoning import ReasoningSplitter, Split, prompt_opens_reasoning, split_output

CASES = [
    # text, opened by the prompt, answer header -> reasoning, answer, reasoning finished
    ("<think>Iron is low.</think>Anemia.", False, None, ("Iron is low.", "Anemia.", True)),
    ("  <think>\nIron is low.\n</think>\n\nAnemia.\n", False, None, ("Iron is low.", "Anemia.", True)),
    ("Iron is low.</think>Anemia.", True, None, ("Iron is low.", "Anemia.", True)),  # R1: prompt opened it
    ("<think>Iron is low, and", False, None, ("Iron is low, and", "", False)),  # hit max_tokens
    ("Iron is low, and", True, None, ("Iron is low, and", "", False)),
    ("Anemia, from low iron.", False, None, (None, "Anemia, from low iron.", True)),  # no reasoning at all
    ("<think></think>Anemia.", False, None, ("", "Anemia.", True)),
    ("", False, None, (None, "", True)),
    ("", True, None, ("", "", False)),
    ("<thin", False, None, (None, "<thin", True)),  # a partial tag at the very end is text
    ("<thinking>is not a tag</thinking>", False, None, (None, "<thinking>is not a tag</thinking>", True)),
    ("<think>a < b </thi</think>ok", False, None, ("a < b </thi", "ok", True)),
    (f"<think>Low iron.</think>{R1_ANSWER_HEADER}Anemia.", False, R1_ANSWER_HEADER, ("Low iron.", "Anemia.", True)),
    ("<think>r</think>### Answ", False, R1_ANSWER_HEADER, ("r", "### Answ", True)),
    ("<think>r</think>The answer: ### Answer:", False, R1_ANSWER_HEADER, ("r", "The answer: ### Answer:", True)),
    # a second think block after some answer is reasoning too: no tag and no reasoning in the answer
    ("<think>r1</think>Part one. <think>r2</think> Part two.", False, None,
     ("r1\n\nr2", "Part one.\n\nPart two.", True)),
    ("Part one.<think>r2</think>Part two.", False, None, ("r2", "Part one.\n\nPart two.", True)),
    ("<think>r1</think>Part one.<think>still going", False, None, ("r1\n\nstill going", "Part one.", False)),
    ("Done. <thin", False, None, (None, "Done. <thin", True)),
]


@pytest.mark.parametrize("text, opened, header, expected", CASES)
def test_split_whole(text, opened, header, expected):
    assert split_output(text, opened, header) == Split(*expected)


@pytest.mark.parametrize("text, opened, header, expected", CASES)
@pytest.mark.parametrize("size", [1, 2, 3, 7])
def test_streaming_in_any_chunks_gives_the_same_split(text, opened, header, expected, size):
    splitter = ReasoningSplitter(opened, header)
    deltas = []
    for i in range(0, len(text), size):
        deltas += splitter.feed(text[i:i + size])
    tail, split = splitter.finish()
    deltas += tail
    assert split == Split(*expected)
    streamed_reasoning = "".join(d.text for d in deltas if d.kind == "reasoning")
    streamed_answer = "".join(d.text for d in deltas if d.kind == "answer")
    assert streamed_reasoning.strip() == (expected[0] or "")
    assert streamed_answer.strip() == expected[1]


def test_deltas_never_carry_tags_or_leading_space():
    splitter = ReasoningSplitter()
    deltas = [d for chunk in ["<", "think", ">", " Low", " iron", ".", " </", "think>", "\n\n", "Anemia", "."]
              for d in splitter.feed(chunk)]
    deltas += splitter.finish()[0]
    assert [(d.kind, d.text) for d in deltas] == [
        ("reasoning", "Low"), ("reasoning", " iron"), ("reasoning", "."), ("answer", "Anemia"), ("answer", "."),
    ]


def test_reasoning_comes_out_before_the_block_closes():
    splitter = ReasoningSplitter()
    assert [d.text for d in splitter.feed("<think>Step one. Step")] == ["Step one. Step"]


@pytest.mark.parametrize("prompt, expected", [
    ("<|Assistant|><think>\n", True), ("<|assistant|>", False), ("<think>done</think>", False),
])
def test_prompt_opens_reasoning(prompt, expected):
    assert prompt_opens_reasoning(prompt) is expected
