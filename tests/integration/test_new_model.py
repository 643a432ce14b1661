"""`medtune new-model` end to end: the folder loads in transformers and mlx-lm, renders chats, gives finite logits."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from medtune.cli import main as cli
from medtune.models.tiny import build_tiny_model

ARCHS = ("llama", "mistral", "phi3", "qwen2")
CHAT = [
    {"role": "system", "content": "Be careful."},
    {"role": "user", "content": "What causes fever?"},
    {"role": "assistant", "content": "<think>Infection is common.</think>Usually an infection."},
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Each arch built through the command line, with its wall time."""
    out = {}
    for arch in ARCHS:
        path = tmp_path_factory.mktemp("cli") / arch
        start = time.perf_counter()
        assert cli(["new-model", "--arch", arch, "--out", str(path), "--seed", "1"]) == 0
        out[arch] = (path, time.perf_counter() - start)
    return out


@pytest.mark.parametrize("arch", ARCHS)
def test_loads_in_transformers_and_renders_chats(built, arch):
    path, _ = built[arch]
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert model.config.model_type == arch and 100_000 < model.num_parameters() < 500_000
    assert tokenizer.apply_chat_template(CHAT, tokenize=False) == (
        "<|system|>Be careful.<|end|><|user|>What causes fever?<|end|>"
        "<|assistant|><think>Infection is common.</think>Usually an infection.<|end|></s>")
    prompt = tokenizer.apply_chat_template(CHAT[:2], add_generation_prompt=True, return_dict=True,
                                           return_tensors="pt")
    assert tokenizer.decode(prompt["input_ids"][0]).endswith("<|end|><|assistant|>")
    logits = model(**prompt).logits
    assert logits.shape[-1] == len(tokenizer) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_special_tokens_are_single_ids(built, arch):
    tokenizer = AutoTokenizer.from_pretrained(built[arch][0])
    for token in ["<s>", "</s>", "<pad>", "<unk>", "<|user|>", "<|assistant|>", "<|system|>", "<|end|>",
                  "<think>", "</think>"]:
        assert len(tokenizer(token, add_special_tokens=False)["input_ids"]) == 1, token
    assert 1000 < len(tokenizer) < 2100
    # reasoning markers survive skip_special_tokens so the reasoning can be split off after decoding
    ids = tokenizer("<think>a</think>b<|end|>", add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids, skip_special_tokens=True) == "<think>a</think>b"


def test_generation_stops_at_end_of_turn(built):
    config = json.loads((built["phi3"][0] / "generation_config.json").read_text())
    tokenizer = AutoTokenizer.from_pretrained(built["phi3"][0])
    assert config["eos_token_id"] == tokenizer.convert_tokens_to_ids(["</s>", "<|end|>"])


@pytest.mark.parametrize("arch", ARCHS)
def test_mlx_lm_loads_it_with_the_same_logits(built, arch):
    mlx_lm = pytest.importorskip("mlx_lm")
    import mlx.core as mx

    path, _ = built[arch]
    model, tokenizer = mlx_lm.load(str(path))
    ids = tokenizer.apply_chat_template(CHAT[:2], add_generation_prompt=True)
    mlx_logits = np.array(model(mx.array([ids])))
    torch_logits = AutoModelForCausalLM.from_pretrained(path)(torch.tensor([ids])).logits.detach().numpy()
    assert np.abs(mlx_logits - torch_logits).max() < 1e-4
    assert set(tokenizer.eos_token_ids) == set(tokenizer.convert_tokens_to_ids(["</s>", "<|end|>"]))


def test_build_is_fast(built):
    # the first build pays for importing torch and transformers
    assert max(seconds for _, seconds in built.values()) < 20
    assert sorted(seconds for _, seconds in built.values())[:3][-1] < 2


def test_same_seed_same_weights_other_seed_other_weights(built, tmp_path):
    again = load_file(build_tiny_model("qwen2", tmp_path / "a", seed=1) / "model.safetensors")
    other = load_file(build_tiny_model("qwen2", tmp_path / "b", seed=2) / "model.safetensors")
    first = load_file(built["qwen2"][0] / "model.safetensors")
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["model.embed_tokens.weight"], other["model.embed_tokens.weight"])


def test_small_size_and_custom_data(tmp_path):
    data = tmp_path / "chat.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Dose of drug {i} for renal impairment?"},
                          {"role": "assistant", "content": "Reduce the dose and monitor creatinine."}]}
            for i in range(50)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    path = build_tiny_model("mistral", tmp_path / "m", data_file=data, size="small")
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.num_hidden_layers == 4 and 1_000_000 < model.num_parameters() < 5_000_000
    assert "Ġcreatinine" in tokenizer.get_vocab()  # learnt from the given text, not the bundled one


def test_cli_errors_are_one_line(tmp_path, capsys):
    missing = tmp_path / "missing.jsonl"
    assert cli(["new-model", "--out", str(tmp_path / "m"), "--data", str(missing)]) == 2
    assert capsys.readouterr().err.strip() == f"medtune new-model: error: {missing}: data file not found"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": "ok"}\n{oops\n')
    assert cli(["new-model", "--out", str(tmp_path / "m"), "--data", str(bad)]) == 2
    assert f"{bad}:2: not valid JSON" in capsys.readouterr().err
    taken = tmp_path / "taken"
    taken.write_text("a file")
    assert cli(["new-model", "--out", str(taken)]) == 2
    assert capsys.readouterr().err.strip().endswith(f"{taken} exists and is not a folder")
    assert cli(["new-model"]) == 2
    assert "give --out DIR" in capsys.readouterr().err
    assert cli(["new-model", "--out", str(tmp_path / "w"), "--pretrain-steps", "-1"]) == 2


def test_an_existing_model_folder_is_never_replaced(tmp_path, capsys):
    """A folder that holds files (someone's model, with adapters trained on it) is refused, left as it was."""
    own = tmp_path / "model"
    own.mkdir()
    (own / "config.json").write_text('{"model_type": "llama"}')
    (own / "model.safetensors").write_bytes(b"weights")
    assert cli(["new-model", "--out", str(own)]) == 2
    assert capsys.readouterr().err.strip() == (f"medtune new-model: error: --out {own} already holds files "
                                               "(config.json, model.safetensors): choose an empty or new folder")
    assert (own / "model.safetensors").read_bytes() == b"weights" and len(list(own.iterdir())) == 2
    (tmp_path / "empty").mkdir()
    assert cli(["new-model", "--out", str(tmp_path / "empty")]) == 0  # an empty folder is fine


def test_a_config_given_with_out_is_read_and_checked(tmp_path, capsys):
    broken = tmp_path / "broken.yaml"
    broken.write_text("model: {name: [unclosed\n")
    assert cli(["new-model", str(broken), "--out", str(tmp_path / "a")]) == 2
    assert f"{broken}:" in capsys.readouterr().err and not (tmp_path / "a").exists()
    assert cli(["new-model", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "b")]) == 2
    assert "config file not found" in capsys.readouterr().err and not (tmp_path / "b").exists()
    assert cli(["new-model", "--config", str(tmp_path / "nope.yaml"), "--out", str(tmp_path / "c")]) == 2


def test_out_comes_from_the_configs_model_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cfg.yaml").write_text("model: {name: ./models/tiny}\n")
    assert cli(["new-model", "cfg.yaml", "--arch", "phi3"]) == 0
    assert json.loads((tmp_path / "models/tiny/config.json").read_text())["model_type"] == "phi3"
    info = json.loads((tmp_path / "models/tiny/medtune_new_model.json").read_text())
    assert info["arch"] == "phi3" and info["warm_up"] is None
    (tmp_path / "hub.yaml").write_text("model: {name: microsoft/Phi-4-mini-instruct}\n")
    assert cli(["new-model", "hub.yaml"]) == 2


@pytest.mark.slow  # trains the model for a few hundred steps
def test_warm_up_teaches_the_text_and_is_recorded(tmp_path, capsys):
    assert cli(["new-model", "--out", str(tmp_path / "w"), "--pretrain-steps", "40"]) == 0
    assert "warm-up: 40 steps" in capsys.readouterr().out
    warm = json.loads((tmp_path / "w" / "medtune_new_model.json").read_text())["warm_up"]
    assert warm["steps"] == 40 and warm["last_loss"] < warm["first_loss"] - 1.0
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "w")
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "w")
    ids = tokenizer("The patient presents with fever and", return_tensors="pt")["input_ids"]
    random = AutoModelForCausalLM.from_pretrained(build_tiny_model("llama", tmp_path / "r"))
    with torch.no_grad():
        assert model(input_ids=ids, labels=ids).loss < random(input_ids=ids, labels=ids).loss
