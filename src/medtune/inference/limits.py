"""How big one request to `medtune serve` may be, each limit checked before any work (server.py): the body's bytes
(before it is read), the prompts of one /v1/completions call, the tokens of one prompt. The defaults here are the
serve flags' defaults (commands/serve.py: --max-body-mb, --max-prompts, --max-prompt-tokens)."""

from __future__ import annotations

from dataclasses import dataclass

MB = 2**20


@dataclass(frozen=True)
class RequestLimits:
    # a 128k-token context is about 0.5 MB of text, a few times that JSON-escaped: 4 MB carries any prompt a model
    # can read, and stops a client from making the server buffer and tokenize far more (uvicorn sets no cap)
    max_body_mb: int = 4
    # each prompt is tokenized, screened and queued before the first runs; 64 is four full batches at the default
    # --max-batch of 16
    max_prompts: int = 64
    # None: the model's context window, which the engine enforces itself (a prompt must leave room to answer)
    max_prompt_tokens: int | None = None

    @property
    def max_body_bytes(self) -> int:
        return self.max_body_mb * MB
