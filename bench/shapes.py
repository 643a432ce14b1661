"""Published architecture shapes (config.json values) for the benches that build models of real size without
weights (bench/scale_memory.py counts them on the meta device; bench/gpu_check.py trains random ones on a GPU)."""

SHAPES = {  # (transformers family, config values: vocabulary, width, MLP width, blocks, heads, KV heads)
    "Llama-3.1-8B": ("llama", dict(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)),
    "Llama-3.1-70B": ("llama", dict(vocab_size=128256, hidden_size=8192, intermediate_size=28672,
                                    num_hidden_layers=80, num_attention_heads=64, num_key_value_heads=8,
                                    tie_word_embeddings=False)),
    "Phi-3-mini-4k": ("phi3", dict(vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
                                   num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False,
                                   max_position_embeddings=4096)),
    "Phi-4-mini-instruct": ("phi3", dict(vocab_size=200064, hidden_size=3072, intermediate_size=8192,
                                         num_hidden_layers=32, num_attention_heads=24, num_key_value_heads=8,
                                         tie_word_embeddings=True)),
}
# the same families at a few thousand parameters per block: the CPU smoke run of bench/gpu_check.py
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)


def config_for(name: str, vocab_at_least: int = 0, tiny: bool = False):
    """The transformers config of a shape; the vocabulary widened to `vocab_at_least` (a tokenizer's size)."""
    from transformers import LlamaConfig, Phi3Config

    family, values = SHAPES[name]
    values = {**values, **(TINY if tiny else {})}
    values["vocab_size"] = max(values["vocab_size"], vocab_at_least)
    return (LlamaConfig if family == "llama" else Phi3Config)(**values)
