"""The default Engine without weights: medtune's own prompt rendering, token ids, stops, reasoning split and safety
layer, built from a model's tokenizer and config alone, for the engines that hold the weights elsewhere (vLLM,
llama.cpp). They hand each request's token ids to their library and map its tokens back through this engine's
rows (Engine.new_row, Engine.finished), so every engine prompts, stops, splits and screens alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from medtune.config import ModelConfig
from medtune.data.records import Message
from medtune.inference import weights
from medtune.inference.engine import Engine, Generation, Request, SamplingParams, Stats, Stream
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


def _from_prompts(name: str) -> property:
    return property(lambda self: getattr(self.prompts, name), doc=f"the prompt engine's {name}")


class PromptFront:
    """Engine's interface for an engine whose weights live elsewhere (vLLM, llama.cpp): prompts, tokens, stops and
    requests are `self.prompts`' (the default engine without weights); generate, complete and stream are built on
    the subclass's own `run(requests)`."""

    prompts: Engine
    tokenizer = _from_prompts("tokenizer")
    safety = _from_prompts("safety")
    context_length = _from_prompts("context_length")
    system_prompt = _from_prompts("system_prompt")
    eos_ids = _from_prompts("eos_ids")
    template = _from_prompts("template")
    answer_header = _from_prompts("answer_header")

    def prompt(self, messages: Sequence[Message | dict]) -> str:
        return self.prompts.prompt(messages)

    def prompt_ids(self, messages: Sequence[Message | dict]) -> list[int]:
        return self.prompts.prompt_ids(messages)

    def encode(self, text: str) -> list[int]:
        return self.prompts.encode(text)

    def fit(self, messages: list[Message], reserve: int) -> tuple[list[Message], int]:
        return self.prompts.fit(messages, reserve)

    def split_stops(self, stops: Sequence[str]) -> tuple[set[int], list[str]]:
        return self.prompts.split_stops(stops)

    def request(self, messages: Sequence[Message | dict] | None = None, params: SamplingParams | None = None,
                **kwargs) -> Request:
        """Engine.request: checked, tokenized and (with a safety layer) screened the same way."""
        return self.prompts.request(messages, params, **kwargs)

    def run(self, requests: list[Request]) -> list[Generation]:
        raise NotImplementedError

    def in_turn(self, requests: list[Request], decode: Callable) -> list[Generation]:
        """Each request in turn, in order (engines that hold one sequence: llama.cpp, mlx); a blocked one gets the
        layer's reply. decode(request, stop_ids, on_token) generates, calling on_token(id) for each token until it
        returns True (the row is done), and returns the peak memory in MB; the tokens go through the default
        engine's own Row (stops, streamed text, the answer gate, cancellation) and its screening."""
        return [self.prompts.blocked_reply(r) if r.verdict is not None and r.verdict.blocked
                else self._decoded(r, decode) for r in requests]

    def _decoded(self, request: Request, decode: Callable) -> Generation:
        row = self.prompts.new_row(request)
        start, first = time.perf_counter(), None

        def on_token(token: int) -> bool:
            nonlocal first
            first = first if first is not None else time.perf_counter() - start
            return row.step(token)

        peak = 0.0
        if not request.cancel.is_set():
            with self._lock:  # one sequence at a time: the server's scheduler and streams share the engine
                peak = decode(request, row.stop_ids, on_token)
        stats = Stats(len(request.prompt_ids), row.count, time.perf_counter() - start, first, peak)
        gen = self.prompts.finished(request, row, stats)
        if request.on_finish is not None:
            request.on_finish(gen)
        return gen

    def generate(self, conversations: Sequence[Sequence[Message | dict]], params: SamplingParams | None = None,
                 batch_size: int = 16) -> list[Generation]:
        """One Generation per conversation, in order (batch_size: the engine batches as it does, see run)."""
        return self.run([self.request(c, params) for c in conversations])

    def complete(self, prompts: Sequence[str], params: SamplingParams | None = None,
                 batch_size: int = 16) -> list[Generation]:
        """Like generate, for raw prompt texts (no chat template, no system prompt)."""
        return self.run([self.request(params=params, prompt=p) for p in prompts])

    def stream(self, messages: Sequence[Message | dict] | None = None, params: SamplingParams | None = None, *,
               prompt: str | None = None) -> Stream:
        """A Stream of Deltas (llama.cpp: token by token; vLLM: all when the generation ends)."""
        return Stream(self, self.request(messages, params, prompt=prompt))


@dataclass
class Scorer:
    """engine.model for evaluation/loglik.py, for an engine whose logits are not torch's (llama.cpp, mlx): the
    model's config (its context length) and the engine's own tail_logprobs, so multiple choice scores with them."""

    engine: PromptFront
    device: str = "cpu"  # where the returned log-probabilities live

    @property
    def config(self):
        return self.engine.prompts.model.config

    def tail_logprobs(self, inputs: list[tuple], tails: list[int]) -> list:
        return self.engine.tail_logprobs(inputs, tails)
