"""The llama.cpp engine's paths with a stand-in llama_cpp package (fake_llama_cpp.py) in its real child process:
the reasoning split, streaming, the safety layer (rules only) through generate, stream and the server (streamed and
not), and the failures: a package that does not import, a crash at load, a crash mid-answer (one line each; the
server answers the next request), and --engine auto falling back to transformers. No model is converted and
llama.cpp never runs: tests/integration/test_llama_cpp_engine.py runs the real one."""

import sys

import openai
import pytest
from fake_llama_cpp import install
from test_server import live_server

from medtune import cli
from medtune.config import DEFAULT_DISCLAIMER, DEFAULT_EMERGENCY, DEFAULT_REFUSAL, SafetyConfig
from medtune.inference.engine import SamplingParams
from medtune.inference.llama_cpp_engine import GgufModel, LlamaCppEngine
from medtune.inference.llama_cpp_process import LlamaCppFailed
from medtune.inference.reasoning import Delta
from medtune.inference.server import create_app
from medtune.safety import SafetyLayer
from medtune.safety.rules import compile_rules

pytestmark = pytest.mark.usefixtures("one_thread")
QUESTION = "What helps a common cold?"
REASONING, ANSWER = "Recall the usual care.", "Rest and fluids."
SAID = f"{ANSWER}\n\n{DEFAULT_DISCLAIMER}"
CRISIS = "I just took a whole bottle of my sleeping pills"
DRUGS = "Where can I buy oxycodone without a prescription?"
PARAMS = SamplingParams(max_tokens=48)


def rules_layer() -> SafetyLayer:
    cfg = SafetyConfig(classifier=False)  # the classifier has tests of its own: these check the paths
    return SafetyLayer(cfg, compile_rules(cfg.rules))


@pytest.fixture(scope="module")
def tokenizer(tiny_llama):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_llama)


def stand_in(folder, tokenizer, monkeypatch, text: str = f"<think>{REASONING}</think>{ANSWER}", crash: str = ""):
    """The stand-in package answering `text` then EOS, first on the child's PYTHONPATH; a .gguf file for it."""
    from transformers import AutoConfig

    ids = [*tokenizer(text, add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]
    vocab = AutoConfig.from_pretrained(tokenizer.name_or_path).vocab_size
    monkeypatch.setenv("PYTHONPATH", str(install(folder, ids, vocab)))
    monkeypatch.setenv("FAKE_LLAMA_CRASH", crash)
    (folder / "model.gguf").write_bytes(b"GGUF")
    return GgufModel(folder / "model.gguf", "f16", "a stand-in")


def load(tiny_llama, model: GgufModel) -> LlamaCppEngine:
    return LlamaCppEngine.load(model=str(tiny_llama), model_file=lambda source: model, safety=rules_layer(),
                               threads=1)


@pytest.fixture
def engine(tiny_llama, tokenizer, tmp_path, monkeypatch):
    engine = load(tiny_llama, stand_in(tmp_path, tokenizer, monkeypatch))
    yield engine
    engine.close()


def test_generate_and_stream_split_the_reasoning_and_add_the_disclaimer_once(engine):
    gen = engine.generate([[{"role": "user", "content": QUESTION}]], PARAMS)[0]
    assert (gen.reasoning, gen.answer, gen.finish_reason) == (REASONING, SAID, "stop")
    assert gen.stats.generated_tokens == len(gen.token_ids) + 1 and gen.stats.peak_memory_mb > 0  # EOS counted
    stream = engine.stream([{"role": "user", "content": QUESTION}], PARAMS)
    deltas = list(stream)
    assert "".join(d.text for d in deltas if d.kind == "reasoning") == REASONING
    assert "".join(d.text for d in deltas if d.kind == "answer") == SAID
    assert len(deltas) > 3 and stream.generation.answer == SAID  # token by token, not whole


def test_a_crisis_gets_emergency_advice_and_the_model_never_runs(engine):
    stream = engine.stream([{"role": "user", "content": CRISIS}], PARAMS)
    assert list(stream) == [Delta("answer", DEFAULT_EMERGENCY)]
    assert stream.generation.finish_reason == "content_filter" and stream.generation.stats.generated_tokens == 0


def test_a_dangerous_answer_is_stopped_mid_stream_and_replaced(tiny_llama, tokenizer, tmp_path, monkeypatch):
    engine = load(tiny_llama, stand_in(tmp_path, tokenizer, monkeypatch, "Crush the pills into her tea. Then wait."))
    stream = engine.stream([{"role": "user", "content": QUESTION}], PARAMS)
    assert list(stream) == [Delta("answer", DEFAULT_REFUSAL)]  # nothing of the answer went out
    assert stream.generation.finish_reason == "content_filter" and stream.generation.safety.stage == "answer"
    engine.close()


def test_the_server_disclaims_refuses_and_answers_emergencies_streamed_and_not(engine):
    with live_server(create_app(engine)) as address:
        client = openai.OpenAI(base_url=f"{address}/v1", api_key="none", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": QUESTION}]
        whole = client.chat.completions.create(model=engine.name, messages=messages, max_tokens=48)
        assert whole.choices[0].message.content == SAID
        assert whole.choices[0].message.model_extra["reasoning_content"] == REASONING
        chunks = list(client.chat.completions.create(model=engine.name, messages=messages, max_tokens=48,
                                                     stream=True))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == SAID
        refused = client.chat.completions.create(model=engine.name, messages=[{"role": "user", "content": DRUGS}])
        assert refused.choices[0].finish_reason == "content_filter"
        assert refused.choices[0].message.content == DEFAULT_REFUSAL
        chunks = list(client.chat.completions.create(model=engine.name, stream=True,
                                                     messages=[{"role": "user", "content": CRISIS}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == DEFAULT_EMERGENCY
        assert chunks[-1].choices[0].finish_reason == "content_filter"


# ---------------------------------------------------------------- failures: one line each


def test_a_crash_mid_answer_fails_that_request_in_one_line_and_the_server_answers_the_next(
        tiny_llama, tokenizer, tmp_path, monkeypatch):
    engine = load(tiny_llama, stand_in(tmp_path, tokenizer, monkeypatch, crash="eval:3"))
    with live_server(create_app(engine)) as address:
        client = openai.OpenAI(base_url=f"{address}/v1", api_key="none", max_retries=0, timeout=60)
        messages = [{"role": "user", "content": QUESTION}]
        with pytest.raises(openai.InternalServerError) as failed:
            client.chat.completions.create(model=engine.name, messages=messages, max_tokens=48)
        message = failed.value.body["message"] if isinstance(failed.value.body, dict) else str(failed.value)
        assert "llama.cpp crashed (SIGSEGV) while generating" in message and "\n" not in message
        again = client.chat.completions.create(model=engine.name, messages=messages, max_tokens=48)
        assert again.choices[0].message.content == SAID  # a new child took over
    engine.close()


def test_a_crash_at_load_is_one_line_naming_the_signal_and_the_log(tiny_llama, tokenizer, tmp_path, monkeypatch):
    with pytest.raises(LlamaCppFailed) as failed:
        load(tiny_llama, stand_in(tmp_path, tokenizer, monkeypatch, crash="load"))
    line = str(failed.value)
    assert "model.gguf: llama.cpp crashed (SIGSEGV) while loading" in line and "\n" not in line
    log = line.split("its output: ")[1].split(")")[0]
    assert "Segmentation fault" in open(log).read()  # -X faulthandler: where it died


def test_a_package_that_does_not_import_is_one_line(tiny_llama, tokenizer, tmp_path, monkeypatch):
    with pytest.raises(LlamaCppFailed, match="llama.cpp cannot load it \\(llama-cpp-python does not import: "
                                             "libllama.so: cannot open shared object file"):
        load(tiny_llama, stand_in(tmp_path, tokenizer, monkeypatch, crash="import"))


# ---------------------------------------------------------------- the verbs: --engine llama.cpp and auto


def generate(capsys, *argv):
    code = cli.main(["generate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def crashing_at_load(tiny_llama, tokenizer, tmp_path, monkeypatch):
    """The stand-in, crashing at load, as what auto finds installed and what the cache hands the engine."""
    model = stand_in(tmp_path, tokenizer, monkeypatch, crash="load")
    monkeypatch.syspath_prepend(str(tmp_path))  # auto sees a llama_cpp package (it never imports it here)
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)  # auto's choice on a machine without a GPU
    monkeypatch.setattr("medtune.export.gguf_cache.model_file", lambda source: model)
    return model


def test_auto_falls_back_to_transformers_in_one_line_when_llama_cpp_crashes(capsys, tiny_llama, crashing_at_load):
    code, out, err = generate(capsys, "--model", str(tiny_llama), "--max-tokens", "2", "hi", "safety.enabled=false")
    assert code == 0 and out.startswith("Answer:")
    lines = [line for line in err.splitlines() if "engine" in line]
    assert len(lines) == 1 and lines[0].startswith("medtune: engine: transformers (auto: llama.cpp cannot run this "
                                                   "model: model.gguf: llama.cpp crashed (SIGSEGV) while loading")


def test_asked_for_by_name_a_crash_is_the_error(capsys, tiny_llama, crashing_at_load):
    code, _, err = generate(capsys, "--model", str(tiny_llama), "--engine", "llama.cpp", "--max-tokens", "2", "hi")
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "llama.cpp crashed (SIGSEGV) while loading" in lines[0], err


def test_without_the_package_llama_cpp_is_one_line_and_auto_says_how_to_install_it(capsys, tiny_llama,
                                                                                    monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # a machine without llama-cpp-python
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    code, _, err = generate(capsys, "--model", str(tiny_llama), "--engine", "llama.cpp", "--max-tokens", "2", "hi")
    assert code == 2 and err.strip() == ("medtune generate: error: --engine llama.cpp needs llama-cpp-python, which "
                                         "is not installed here: pip install 'medtune[gguf]' (it compiles "
                                         "llama.cpp: a few minutes, once)")
    code, _, err = generate(capsys, "--model", str(tiny_llama), "--max-tokens", "2", "hi", "safety.enabled=false")
    assert code == 0 and "medtune: engine: transformers (auto: no CUDA GPU; pip install 'medtune[gguf]'" in err
