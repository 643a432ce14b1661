"""`medtune export --to gguf`: llama.cpp's converter writes the file, and llama.cpp itself (llama-cpp-python) and
transformers' GGUF loader open it and give the greedy tokens of base + adapter computed here with PEFT.

The model is a tiny random Llama (grouped-query attention, so the converter's q/k permutation is exercised) with
SmolLM2's real tokenizer: llama.cpp converts only tokenizers it has registered.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys

import pytest
import torch
from inference_helpers import peaked_llama

from medtune.cli import main as cli_main
from medtune.errors import MedtuneError
from medtune.export import gguf as gguf_export

pytestmark = pytest.mark.slow  # merges, converts and runs models in llama.cpp

needs_llama_cpp = pytest.mark.skipif(importlib.util.find_spec("llama_cpp") is None,
                                     reason="llama-cpp-python is not installed (scripts/test.sh installs it)")
PROMPT = [{"role": "system", "content": "You are a careful medical assistant."},
          {"role": "user", "content": "Which drug reverses an opioid overdose?"}]


@pytest.fixture(scope="module")
def tiny_pair(smollm2, tmp_path_factory):
    """(base folder, adapter folder): random weights peaked enough that argmax ties are rare in f16."""
    from peft import LoraConfig, get_peft_model

    root = tmp_path_factory.mktemp("gguf-export")
    base, _ = peaked_llama(smollm2, root / "base")
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      init_lora_weights=False)  # random B: the adapter changes the outputs
    get_peft_model(base, lora).save_pretrained(root / "adapter")
    return root / "base", root / "adapter"


def _prompt_ids(folder):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    return tokenizer.apply_chat_template(PROMPT, add_generation_prompt=True, tokenize=True, return_dict=False)


def _peft_greedy(base, adapter, ids, n=12):
    """Base + adapter, computed with PEFT directly: the reference no medtune code touched (no adapter: the base)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter) if adapter else model
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=n, min_new_tokens=n, do_sample=False)
    return out[0, len(ids):].tolist()


def _llama_cpp_greedy(file, ids, n=12):
    from llama_cpp import Llama

    llm = Llama(model_path=str(file), n_ctx=256, verbose=False)
    tokens = []
    for token in llm.generate(ids, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
        tokens.append(int(token))
        if len(tokens) == n:
            return tokens


@pytest.fixture(scope="module")
def f16_export(tiny_pair, tmp_path_factory):
    base, adapter = tiny_pair
    out = tmp_path_factory.mktemp("exports") / "f16"
    assert cli_main(["export", "--model", str(base), "--adapter", str(adapter), "--to", "gguf", "--out", str(out),
                     "data.system_prompt=You are a careful medical assistant."]) == 0
    return out


@needs_llama_cpp
def test_f16_file_runs_in_llama_cpp_with_the_greedy_tokens_of_base_plus_adapter(tiny_pair, f16_export):
    base, adapter = tiny_pair
    files = sorted(f16_export.glob("*.gguf"))
    assert len(files) == 1 and files[0].name.endswith(".F16.gguf")
    ids = _prompt_ids(base)
    want = _peft_greedy(base, adapter, ids)
    assert want != _peft_greedy(base, None, ids)  # the adapter matters, so a file without it would fail here
    assert _llama_cpp_greedy(files[0], ids) == want
    info = json.loads((f16_export / gguf_export.INFO_FILE).read_text())
    assert info["runtime"].startswith("llama.cpp") and info["same_token_ids"] and info["argmax_agreement"] >= 0.9


def test_f16_file_opens_in_transformers_gguf_loader_with_the_same_greedy_tokens(tiny_pair, f16_export):
    from transformers import AutoModelForCausalLM

    base, adapter = tiny_pair
    file = next(f16_export.glob("*.gguf"))
    model = AutoModelForCausalLM.from_pretrained(f16_export, gguf_file=file.name, dtype=torch.float32)
    ids = _prompt_ids(base)
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert out[0, len(ids):].tolist() == _peft_greedy(base, adapter, ids)


def test_without_llama_cpp_the_check_runs_in_transformers_gguf_loader(tiny_pair, f16_export, monkeypatch):
    from transformers import AutoTokenizer

    base, _ = tiny_pair
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # a machine without llama-cpp-python
    tokenizer = AutoTokenizer.from_pretrained(base)
    ids = _prompt_ids(base)
    runtime, got_ids, logits, greedy = gguf_export._runtime_probe(next(f16_export.glob("*.gguf")), tokenizer, ids,
                                                                  {tokenizer.eos_token_id})
    assert runtime == "transformers' GGUF loader" and got_ids == ids and logits.shape == (len(ids), len(tokenizer))


def test_modelfile_names_the_file_the_system_prompt_and_the_stop_token(f16_export):
    text = (f16_export / "Modelfile").read_text()
    file = next(f16_export.glob("*.gguf")).name
    assert f"FROM ./{file}" in text
    assert 'SYSTEM """You are a careful medical assistant."""' in text
    assert 'PARAMETER stop "<|im_end|>"' in text and 'TEMPLATE """' in text
    assert "PARAMETER num_ctx 512" in text  # the model's own context


@needs_llama_cpp
def test_quantized_files_are_smaller_and_still_run_in_llama_cpp(tiny_pair, tmp_path):
    base, adapter = tiny_pair
    sizes = {}
    for quant in ("q8_0", "q4_k_m"):  # q8_0 by the converter, q4_k_m by llama.cpp's quantizer
        out = tmp_path / quant
        result = gguf_export.export(_source(base, adapter), out, quant)
        assert result.file.name.endswith(f".{quant.upper()}.gguf") and result.runtime.startswith("llama.cpp")
        assert result.same_token_ids and len(_llama_cpp_greedy(result.file, _prompt_ids(base))) == 12
        sizes[quant] = result.file.stat().st_size
        logs = {"convert.log", "check.log"} | ({"quantize.log"} if quant == "q4_k_m" else set())
        assert logs <= {p.name for p in out.iterdir()}  # each step's own log, beside the file
    assert sizes["q4_k_m"] < sizes["q8_0"]
    assert not list(tmp_path.glob(".*.partial"))  # the work folder is renamed into place, nothing left behind


def test_unsupported_architecture_is_one_line_naming_it_before_any_merge(tiny_pair, tmp_path):
    base, adapter = tiny_pair
    odd = tmp_path / "odd"
    shutil.copytree(base, odd)
    config = json.loads((odd / "config.json").read_text())
    config["architectures"] = ["MedtuneToyForCausalLM"]
    (odd / "config.json").write_text(json.dumps(config))
    with pytest.raises(MedtuneError) as error:
        gguf_export.export(_source(odd, None), tmp_path / "out", "f16")
    assert "does not support MedtuneToyForCausalLM" in str(error.value) and "\n" not in str(error.value)
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.partial"))


def test_unknown_quant_type_is_refused_with_the_choices(tiny_pair, tmp_path):
    with pytest.raises(MedtuneError, match="q4_k_m"):
        gguf_export.export(_source(*tiny_pair), tmp_path / "out", "q3_x")


def _source(base, adapter):
    from medtune import config as config_mod
    from medtune.inference import weights

    cfg = config_mod.load(None, values={"model.name": str(base)})
    return weights.resolve(cfg, str(adapter) if adapter else None)
