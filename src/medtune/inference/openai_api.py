"""The OpenAI wire format: request models (validated by pydantic), response and stream-chunk bodies, errors.

Reasoning goes in message.reasoning_content (streamed as delta.reasoning_content), as vLLM and DeepSeek's API do.
top_k, repetition_penalty and ignore_eos are accepted as vLLM-style extensions.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from medtune.data.records import Message
from medtune.inference.engine import Generation
from medtune.inference.params import SEED_MAX, SEED_MIN, SamplingParams


class APIError(Exception):
    """An error answered as OpenAI does: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


def _unicode(text: str) -> str:
    """A lone surrogate ("\\ud800", half of a UTF-16 pair) parses from JSON but is no character: neither the
    tokenizer nor the reply's UTF-8 can take it, so it is refused here, naming its field, not deep in the engine."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise PydanticCustomError("unicode", "not valid Unicode: a lone surrogate ({char}) at character {at}",
                                  {"char": f"\\u{ord(text[error.start]):04x}", "at": error.start}) from None
    return text


Text = Annotated[str, AfterValidator(_unicode)]


class TextPart(BaseModel):
    type: Literal["text"]
    text: Text


class ChatMessage(BaseModel):
    role: Literal["system", "developer", "user", "assistant"]
    content: Text | list[TextPart] | None = None

    def to_message(self) -> Message:
        text = self.content if isinstance(self.content, str) else "".join(p.text for p in self.content or [])
        return Message("system" if self.role == "developer" else self.role, text)


class StreamOptions(BaseModel):
    include_usage: bool = False


class Sampling(BaseModel):
    """Fields both endpoints share; unset ones take the server's defaults."""

    model_config = ConfigDict(strict=True)  # "max_tokens": "10" is a client bug to report, as OpenAI does
    model: Text
    max_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=0)
    repetition_penalty: float | None = Field(None, gt=0)
    seed: int | None = Field(None, ge=SEED_MIN, le=SEED_MAX)
    stop: Text | list[Text] | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1)
    ignore_eos: bool = False

    def params(self, defaults: SamplingParams, max_tokens: int | None = None) -> SamplingParams:
        given = {"max_tokens": max_tokens or self.max_tokens, "temperature": self.temperature,
                 "top_p": self.top_p, "top_k": self.top_k, "repetition_penalty": self.repetition_penalty,
                 "seed": self.seed, "stop": self.stop, "ignore_eos": self.ignore_eos}
        chosen = {k: v if v is not None else getattr(defaults, k) for k, v in given.items()}
        return SamplingParams(**chosen)


class ChatRequest(Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)


class CompletionRequest(Sampling):
    prompt: Text | list[Text]


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(gens: list[Generation]) -> dict:
    prompt = sum(g.stats.prompt_tokens for g in gens)
    completion = sum(g.stats.generated_tokens for g in gens)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def finish_reason(gen: Generation) -> str:
    """OpenAI's values: "content_filter" when the safety layer refused or replaced the answer."""
    return gen.finish_reason if gen.finish_reason in ("length", "content_filter") else "stop"


def safety(gen: Generation) -> dict | None:
    """The extra field that says why the layer stepped in: action, layer, category, stage ("request": the model
    never ran; "answer": the answer was replaced, so streamed text before it is withdrawn) and the reply."""
    if gen.safety is None:
        # an emergency that is no harmful request: the advice opens the answer, which the model wrote
        return {"action": "advise", "category": "emergency", "replaced": False, "text": gen.advice} if gen.advice \
            else None
    return {**gen.safety.to_dict(), "replaced": gen.safety.stage == "answer", "text": gen.answer}


def chat_completion(gen: Generation, model: str, ident: str, created: int) -> dict:
    message = {"role": "assistant", "content": gen.answer, "reasoning_content": gen.reasoning}
    choice = {"index": 0, "message": message, "finish_reason": finish_reason(gen), "logprobs": None}
    return {"id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [_with_safety(choice, gen)], "usage": usage([gen])}


def chat_chunk(ident: str, created: int, model: str, delta: dict, finish: str | None = None,
               gen: Generation | None = None) -> dict:
    choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
    return {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": [_with_safety(choice, gen) if gen is not None else choice]}


def _with_safety(choice: dict, gen: Generation) -> dict:
    marker = safety(gen)
    return {**choice, "safety": marker} if marker else choice


def completion(gens: list[Generation], model: str, ident: str, created: int) -> dict:
    choices = [_with_safety({"index": i, "text": g.text, "finish_reason": finish_reason(g), "logprobs": None}, g)
               for i, g in enumerate(gens)]
    return {"id": ident, "object": "text_completion", "created": created, "model": model, "choices": choices,
            "usage": usage(gens)}


def completion_chunk(ident: str, created: int, model: str, text: str, finish: str | None = None,
                     gen: Generation | None = None) -> dict:
    choice = {"index": 0, "text": text, "finish_reason": finish, "logprobs": None}
    return {"id": ident, "object": "text_completion", "created": created, "model": model,
            "choices": [_with_safety(choice, gen) if gen is not None else choice]}


def usage_chunk(ident: str, created: int, model: str, obj: str, gen: Generation) -> dict:
    return {"id": ident, "object": obj, "created": created, "model": model, "choices": [], "usage": usage([gen])}


def models_list(name: str, created: int, context: int | None) -> dict:
    return {"object": "list", "data": [{"id": name, "object": "model", "created": created, "owned_by": "medtune",
                                        "max_model_len": context}]}


def now() -> int:
    return int(time.time())
