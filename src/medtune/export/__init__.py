"""Shipping a run: merged models (and, to come, MLX and GGUF exports and the Hub)."""
