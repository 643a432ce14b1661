"""The default Engine without weights: medtune's own prompt rendering, token ids, stops, reasoning split and safety
layer, built from a model's tokenizer and config alone, for the engines that hold the weights elsewhere (vLLM,
llama.cpp). They hand each request's token ids to their library and map its tokens back through this engine's
rows (Engine.new_row, Engine.finished), so every engine prompts, stops, splits and screens alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from medtune.config import ModelConfig
from medtune.inference import weights
from medtune.inference.engine import Engine
from medtune.models import gguf


@dataclass
class ModelFacts:
    """What Engine reads from a model besides its weights (context length, EOS ids): vLLM holds the weights."""

    config: object  # transformers PretrainedConfig
    generation_config: object | None = None  # transformers GenerationConfig; None when the model ships none


def prompt_engine(source: weights.Source, system_prompt: str | None, template: str | None,
                  extra_eos_tokens: Sequence[str], safety) -> Engine:
    """The default engine without weights: medtune's own prompts, tokens, stops and safety for another engine's
    requests."""
    from medtune.models.load import load_model_config, load_tokenizer

    cfg = source.config
    facts = ModelFacts(load_model_config(cfg.model), _generation_config(cfg.model))
    system = system_prompt if system_prompt is not None else weights.default_system_prompt(cfg)
    return Engine(facts, load_tokenizer(cfg.model, padding_side="left"), template=template or cfg.data.template,
                  system_prompt=system, extra_eos_tokens=extra_eos_tokens, name=source.name, safety=safety)


def _generation_config(model_cfg: ModelConfig):
    """The model's generation_config.json (its EOS ids), or None when it has none."""
    from transformers import GenerationConfig

    try:
        return GenerationConfig.from_pretrained(gguf.local_folder(model_cfg.name, model_cfg.gguf_cache),
                                                revision=model_cfg.revision)
    except OSError:
        return None
