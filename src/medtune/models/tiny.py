"""A small random-weight model with a tokenizer trained on the spot (what `medtune new-model` builds).

The folder it writes is an ordinary Hugging Face checkpoint (config.json, model.safetensors, tokenizer.json,
tokenizer_config.json with a chat template, generation_config.json): transformers and mlx-lm load it as they
would a hub model, so tests and demos exercise the real loading code with no network.
"""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from medtune.errors import MedtuneError

ARCHS = ("llama", "mistral", "phi3", "qwen2")

# Shapes per size; vocab_size is the BPE target (the bundled text reaches it), plus the two think tokens.
SIZES = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 intermediate_size=128, vocab_size=1024),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=8, num_key_value_heads=4,
                  intermediate_size=512, vocab_size=2048),
    # wide enough that matrix products, not per-call overhead, dominate a training step: for benchmarks
    "medium": dict(hidden_size=768, num_hidden_layers=4, num_attention_heads=12, num_key_value_heads=4,
                   intermediate_size=2048, vocab_size=2048),
}

BOS, EOS, PAD, UNK, END = "<s>", "</s>", "<pad>", "<unk>", "<|end|>"
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]
THINK_TOKENS = ["<think>", "</think>"]  # plain added tokens: decoding keeps them so reasoning can be split off

# Phi-3 / Phi-4-mini layout; eos closes a finished conversation, a generation prompt opens the assistant turn.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] not in ['system', 'user', 'assistant'] %}"
    "{{ raise_exception('unknown role: ' + message['role']) }}{% endif %}"
    "{{ '<|' + message['role'] + '|>' + message['content'] + '<|end|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% else %}{{ eos_token }}{% endif %}"
)

# mlx-lm's default RoPE base per arch: it ignores the rope_parameters that transformers 5 writes, so they must agree.
ROPE_THETA = {"llama": 10000.0, "mistral": 10000.0, "phi3": 10000.0, "qwen2": 1000000.0}

DEFAULT_TEXT = "medical_tiny.jsonl"  # 18 medical-o1 records (see assets/README.md)
BUILD_INFO = "medtune_new_model.json"  # how the folder was made (arch, size, seed, text, warm-up figures)


def build_tiny_model(arch: str, out_dir, data_file=None, size: str = "tiny", seed: int = 0,
                     pretrain_steps: int = 0) -> Path:
    """Write a random-weight `arch` model and a tokenizer trained on `data_file` (or the bundled text) to out_dir;
    with pretrain_steps, the model is first warmed up on that text. How it was made goes to BUILD_INFO."""
    if arch not in ARCHS:
        raise MedtuneError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    if size not in SIZES:
        raise MedtuneError(f"unknown size {size!r}; choose one of {', '.join(SIZES)}")
    out = Path(out_dir)
    for p in (out, *out.parents):  # before the tokenizer is trained, not after
        if p.exists() and not p.is_dir():
            raise MedtuneError(f"--out {out}: {p} exists and is not a folder")
    held = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    if held:  # someone's model (and adapters trained on it) is never replaced
        shown = ", ".join(held[:4]) + (", ..." if len(held) > 4 else "")
        raise MedtuneError(f"--out {out} already holds files ({shown}): choose an empty or new folder")
    if pretrain_steps < 0:
        raise MedtuneError(f"--pretrain-steps {pretrain_steps}: give 0 (random weights) or more")
    texts = read_texts(data_file)
    tokenizer = train_tokenizer(texts, SIZES[size]["vocab_size"])
    model = random_model(arch, size, tokenizer, seed)
    warm = None
    if pretrain_steps:
        from medtune.models.warmup import conversation_texts, warm_up

        try:
            warm = warm_up(model, tokenizer, conversation_texts(read_rows(data_file), tokenizer), pretrain_steps, seed)
        except ValueError as e:
            raise MedtuneError(f"--pretrain-steps: {e}") from None
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    info = {"arch": arch, "size": size, "seed": seed, "data": str(data_file or DEFAULT_TEXT), "warm_up": warm}
    (out / BUILD_INFO).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    return out


def read_texts(data_file=None) -> list[str]:
    """Training text: every string value of a .jsonl file's records, or a plain text file's lines."""
    out: list[str] = []
    for item in read_rows(data_file):
        _collect_strings(item, out)
    texts = [t for t in out if t.strip()]
    if not texts:
        raise MedtuneError(f"{data_file}: no text to train a tokenizer on")
    return texts


def read_rows(data_file=None) -> list:
    """A .jsonl file's records (the bundled sample by default), or a plain text file's non-empty lines."""
    if data_file is None:
        source = resources.files("medtune") / "assets" / DEFAULT_TEXT
        return _jsonl_rows(source.read_text(encoding="utf-8"), DEFAULT_TEXT)
    path = Path(data_file)
    if not path.is_file():
        raise MedtuneError(f"{path}: data file not found")
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".jsonl":
        return _jsonl_rows(text, str(path))
    return [line for line in text.splitlines() if line.strip()]


def _jsonl_rows(text: str, source: str) -> list:
    rows = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as e:
                raise MedtuneError(f"{source}:{n}: not valid JSON ({e.msg})") from None
    return rows


def _collect_strings(value, out: list[str]) -> None:
    # Nested records (chat messages, options) hold their text below the top level.
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for v in value.values():
            _collect_strings(v, out)
    elif isinstance(value, list):
        for v in value:
            _collect_strings(v, out)


def train_tokenizer(texts: list[str], vocab_size: int):
    """A byte-level BPE tokenizer (GPT-2 / Llama-3 style) with the chat and reasoning tokens of the template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    core = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)  # exact character offsets for loss masks
    specials = [UNK, BOS, EOS, PAD, *ROLE_TOKENS, END]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    core.train_from_iterator(texts, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                        unk_token=UNK, chat_template=CHAT_TEMPLATE, model_max_length=4096)
    tokenizer.add_special_tokens({"additional_special_tokens": [*ROLE_TOKENS, END]})
    tokenizer.add_tokens(THINK_TOKENS)
    return tokenizer


def random_model(arch: str, size: str, tokenizer, seed: int):
    """A freshly initialised causal LM of the real transformers class for `arch`."""
    import torch
    from transformers import AutoModelForCausalLM, GenerationConfig

    torch.manual_seed(seed)  # weights are drawn from torch's RNG alone (transformers.set_seed would import peft)
    model = AutoModelForCausalLM.from_config(model_config(arch, size, tokenizer), dtype=torch.float32)
    ids = tokenizer.convert_tokens_to_ids([EOS, END])
    # generation stops at the end of the assistant turn (<|end|>) as well as at eos, as Phi-3 does
    model.generation_config = GenerationConfig(bos_token_id=tokenizer.bos_token_id, eos_token_id=ids,
                                               pad_token_id=tokenizer.pad_token_id)
    return model


def model_config(arch: str, size: str, tokenizer):
    """The transformers config class of `arch`, shaped by SIZES and pointed at the tokenizer's special ids."""
    from transformers import LlamaConfig, MistralConfig, Phi3Config, Qwen2Config

    cls = {"llama": LlamaConfig, "mistral": MistralConfig, "phi3": Phi3Config, "qwen2": Qwen2Config}[arch]
    shape = {k: v for k, v in SIZES[size].items() if k != "vocab_size"}
    return cls(
        **shape, vocab_size=len(tokenizer), max_position_embeddings=4096, rope_theta=ROPE_THETA[arch],
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id, dtype="float32",
    )
