"""Tokenizers for pure-function tests: the tiny model's tokenizer (BPE trained locally, chat template)."""

import copy

import pytest
from transformers import AutoTokenizer

from medtune.models.tiny import build_tiny_model


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory):
    return build_tiny_model("llama", tmp_path_factory.mktemp("tok") / "tiny-llama")


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    return AutoTokenizer.from_pretrained(tokenizer_dir)


@pytest.fixture
def tokenizer_copy(tokenizer):
    return copy.deepcopy(tokenizer)
