"""The parts of GGUF export that are medtune's own: finding llama.cpp's converter inside llama-cpp-python's source
package, reading which architectures it converts, saying why it failed, and the Ollama Modelfile."""

from __future__ import annotations

import io
import sys
import tarfile

import pytest

from medtune.errors import MedtuneError
from medtune.export import llama_cpp, modelfile
from medtune.export.modelfile import Pieces

CHATML = Pieces(head="<|im_start|>system\n", system_user="<|im_end|>\n<|im_start|>user\n",
                first_user="<|im_start|>user\n", user_answer="<|im_end|>\n<|im_start|>assistant\n",
                answer_user="<|im_end|>\n<|im_start|>user\n")


def _sdist(path, files: dict[str, str]):
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(f"llama_cpp_python-9.9/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_extract_keeps_only_the_converter_and_what_it_imports(tmp_path):
    v = "vendor/llama.cpp/"
    _sdist(tmp_path / "src.tar.gz", {
        f"{v}convert_hf_to_gguf.py": "print('convert')", f"{v}conversion/__init__.py": "TEXT_MODEL_MAP = {}",
        f"{v}gguf-py/gguf/__init__.py": "", f"{v}LICENSE": "MIT", f"{v}ggml/src/ggml.c": "int x;",
        "llama_cpp/llama.py": "", f"{v}convert_lora_to_gguf.py": ""})
    llama_cpp._extract(tmp_path / "src.tar.gz", tmp_path / "out")
    kept = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*") if p.is_file())
    assert kept == ["LICENSE", "conversion/__init__.py", "convert_hf_to_gguf.py", "gguf-py/gguf/__init__.py"]


def test_extract_without_the_converter_says_so(tmp_path):
    _sdist(tmp_path / "src.tar.gz", {"llama_cpp/llama.py": ""})
    with pytest.raises(MedtuneError, match="no vendor/llama.cpp/convert_hf_to_gguf.py"):
        llama_cpp._extract(tmp_path / "src.tar.gz", tmp_path / "out")


def test_architectures_are_read_from_the_converter_source_without_importing_it(tmp_path):
    (tmp_path / "conversion").mkdir()
    (tmp_path / "conversion" / "__init__.py").write_text(
        "import torch\nTEXT_MODEL_MAP: dict[str, str] = {\n 'LlamaForCausalLM': 'llama',\n"
        " 'Phi3ForCausalLM': 'phi3',\n}\n")
    converter = llama_cpp.Converter(tmp_path, "test")
    assert llama_cpp.architectures(converter) == {"LlamaForCausalLM", "Phi3ForCausalLM"}
    assert llama_cpp.architectures(llama_cpp.Converter(tmp_path / "none", "test")) is None


def test_a_llama_cpp_folder_without_the_converter_is_refused(tmp_path):
    with pytest.raises(MedtuneError, match="no convert_hf_to_gguf.py"):
        llama_cpp.find(tmp_path)
    (tmp_path / "convert_hf_to_gguf.py").write_text("")
    assert llama_cpp.find(tmp_path).script == tmp_path / "convert_hf_to_gguf.py"


@pytest.mark.parametrize("output, expected", [
    ("WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!\n...\nNotImplementedError: BPE "
     "pre-tokenizer was not recognized", "does not know this tokenizer's pre-tokenizer"),
    ("INFO: loading\nTraceback (most recent call last):\n  File x\nFileNotFoundError: File not found: tok.model\n",
     "FileNotFoundError: File not found: tok.model"),
    ("INFO: a\nsomething odd happened\n", "something odd happened"),
])
def test_converter_failures_come_down_to_one_line(output, expected):
    assert expected in llama_cpp.failure_reason(output)


def test_quantizer_types_need_llama_cpp_python_or_say_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # a machine without llama-cpp-python: import fails
    with pytest.raises(MedtuneError, match="pip install llama-cpp-python"):
        llama_cpp.quantize(tmp_path / "a.gguf", tmp_path / "b.gguf", "q4_k_m", tmp_path / "log")


def test_replay_follows_the_turns():
    text = modelfile.replay(CHATML, "Be careful.", [("user", "Q1"), ("assistant", "A1"), ("user", "Q2")])
    assert text == ("<|im_start|>system\nBe careful.<|im_end|>\n<|im_start|>user\nQ1<|im_end|>\n<|im_start|>"
                    "assistant\nA1<|im_end|>\n<|im_start|>user\nQ2<|im_end|>\n<|im_start|>assistant\n")
    assert modelfile.replay(CHATML, None, [("user", "Q")]) == "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\n"


def test_pieces_of_a_real_chat_template_reproduce_it(smollm2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    found = modelfile.pieces(tokenizer)
    assert found is not None and found.user_answer == "<|im_end|>\n<|im_start|>assistant\n"
    assert "You are a helpful AI assistant named SmolLM" in found.first_user  # the template's own default system
    messages = [{"role": "user", "content": "Dose of naloxone?"}, {"role": "assistant", "content": "0.4 mg IV."},
                {"role": "user", "content": "Repeat?"}]
    want = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert modelfile.replay(found, None, [(m["role"], m["content"]) for m in messages]) == want


def test_named_templates_one_turn_only_get_no_template_line(smollm2):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(smollm2)
    assert modelfile.pieces(tokenizer, "phi-think").user_answer == "<|end|><|assistant|>"
    assert modelfile.pieces(tokenizer, "alpaca") is None  # a one-turn template
    text = modelfile.modelfile("m.F16.gguf", None, None, ["</s>"], None)
    assert "TEMPLATE" not in text.replace("# no TEMPLATE", "") and 'PARAMETER stop "</s>"' in text


def test_go_template_prints_literal_braces_and_quotes_stops():
    odd = Pieces("{{sys}}", "", "", "", "")
    assert '{{ "{{" }}sys}}' in modelfile.go_template(odd)
    assert 'PARAMETER stop "say \\"end\\""' in modelfile.modelfile("m.gguf", None, None, ['say "end"'], None)
