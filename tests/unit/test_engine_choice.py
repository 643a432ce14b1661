"""--engine: what auto picks (llama.cpp without a CUDA GPU where llama-cpp-python is installed, else transformers),
what each name loads, and the quantizations generation.gguf_quant takes (export --to gguf's)."""

import importlib.util
import typing

import pytest

from medtune import config
from medtune.commands import args
from medtune.evaluation.results import SystemResult
from medtune.export.gguf import QUANTS


@pytest.mark.parametrize("gpu, installed, expected", [
    (True, True, "transformers"),
    (False, True, "llama.cpp"),
    (False, False, "transformers"),
])
def test_auto_picks_llama_cpp_only_without_a_gpu_and_with_the_package(monkeypatch, gpu, installed, expected):
    monkeypatch.setattr("torch.cuda.is_available", lambda: gpu)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real("json") if installed else None) if name == "llama_cpp" else real(name))
    choice = args.choose_engine("auto")
    assert choice.name == expected and choice.why  # the start-up line says why
    if not installed:
        assert "pip install 'medtune[gguf]'" in choice.why


def test_a_named_engine_is_itself_and_says_no_why():
    assert [args.choose_engine(n) for n in ("transformers", "llama.cpp", "vllm")] == [
        args.EngineChoice("transformers", ""), args.EngineChoice("llama.cpp", ""), args.EngineChoice("vllm", "")]


@pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None, reason="llama-cpp-python is not installed")
def test_llama_cpp_loads_through_a_loader_that_converts_runs_with_export():
    from medtune.export.gguf_cache import model_file

    loader = args.engine_class("llama.cpp")
    assert loader.model_file is model_file and loader.engine_name == "llama.cpp"


def test_the_quantizations_are_export_s():
    hint = typing.get_type_hints(config.GenerationConfig)["gguf_quant"]
    assert set(typing.get_args(hint)) == set(QUANTS) and config.GenerationConfig().gguf_quant == "f16"


def test_results_name_the_engine_only_when_it_is_not_transformers():
    plain = SystemResult("m", None, "m", 1.0, 0.1)
    assert "engine" not in plain.to_json() and SystemResult.from_json(plain.to_json()).engine == "transformers"
    llama = SystemResult("m", None, "m", 1.0, 0.1, engine="llama.cpp", quant="q8_0")
    back = SystemResult.from_json(llama.to_json())
    assert (back.engine, back.quant, back.engine_label) == ("llama.cpp", "q8_0", "llama.cpp q8_0")
