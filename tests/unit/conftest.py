"""Tokenizers for pure-function tests: the tiny llama's tokenizer (BPE trained locally, with a chat template)."""

import copy

import pytest
from transformers import AutoTokenizer


@pytest.fixture(scope="session")
def tokenizer(tiny_llama):
    return AutoTokenizer.from_pretrained(tiny_llama)


@pytest.fixture
def tokenizer_copy(tokenizer):
    return copy.deepcopy(tokenizer)
