"""An OpenAI-compatible HTTP API (FastAPI) on the shared engine; `medtune serve` (medtune.commands.serve) runs it.

GET /health, GET /v1/models (and /v1/models/{id}), POST /v1/chat/completions (streamed as server-sent events or not),
POST /v1/completions. With an API key, every route but /health needs "Authorization: Bearer KEY" (/docs and
/openapi.json included). A request over its limits (limits.py) is refused before any work. Requests queue and run
in batches (scheduler.py); a client that leaves stops its generation.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from medtune.errors import MedtuneError
from medtune.inference import openai_api as api
from medtune.inference.engine import Engine
from medtune.inference.limits import RequestLimits
from medtune.inference.params import SamplingParams
from medtune.inference.reasoning import REASONING, Delta
from medtune.inference.scheduler import Job, Scheduler
from medtune.inference.server_errors import install_error_handlers

# a load balancer's liveness probe has no key; /health shows counts (refusals by category), never a prompt
OPEN_WITH_A_KEY = {"/health"}


def create_app(engine: Engine, defaults: SamplingParams | None = None, *, api_key: str | None = None,
               max_tokens_cap: int = 4096, max_batch: int = 16, limits: RequestLimits | None = None):
    """The FastAPI app; its scheduler starts and stops with the app's lifespan."""
    defaults = defaults or SamplingParams(max_tokens=max_tokens_cap)
    limits = limits or RequestLimits()
    created = api.now()

    @asynccontextmanager
    async def lifespan(app):
        app.state.scheduler = Scheduler(engine, max_batch)
        yield
        app.state.scheduler.close()

    app = FastAPI(title="medtune", lifespan=lifespan)
    install_error_handlers(app)

    app.add_middleware(_LimitBody, limits=limits)
    app.add_middleware(_Authorize, api_key=api_key)  # added last, so it runs first: the key before the body

    async def submit(request: Request, makers: list, stream: bool) -> list[Job]:
        """Every prompt checked (and screened, off the event loop: a guard endpoint may take a while) before any
        is queued: a rejected request runs nothing."""
        loop = asyncio.get_running_loop()
        try:
            jobs = [Job(await asyncio.to_thread(make), loop, stream) for make in makers]
        except MedtuneError as error:  # prompt too long, bad sampling values, a template that rejects the chat
            raise api.APIError(400, str(error), code=_code(str(error))) from None
        for job in jobs:
            request.app.state.scheduler.submit(job)
        return jobs

    def check(body: api.Sampling, max_tokens: int | None) -> SamplingParams:
        if body.model != engine.name:
            raise api.APIError(404, f"The model '{body.model}' does not exist; this server serves '{engine.name}'",
                               "model", "model_not_found")
        if body.n != 1:
            raise api.APIError(400, f"n = {body.n}: only n = 1 is supported", "n")
        asked = max_tokens or body.max_tokens
        if asked is not None and asked > max_tokens_cap:
            raise api.APIError(400, f"max_tokens = {asked} is above this server's limit of {max_tokens_cap}",
                               "max_tokens")
        return body.params(defaults, max_tokens)

    def check_tokens(text: Callable[[], str], param: str) -> None:
        """--max-prompt-tokens, before the engine screens the prompt; unset, the limit is the model's context
        window, which engine.request enforces itself before screening."""
        limit = limits.max_prompt_tokens
        if limit is not None and (count := len(engine.encode(text()))) > limit:
            raise api.APIError(400, f"{param}: the prompt has {count} tokens, above this server's limit of {limit} "
                               "(--max-prompt-tokens)", param, "context_length_exceeded")

    def chat_request(messages: list, params: SamplingParams):
        check_tokens(lambda: engine.prompt(messages), "messages")
        return engine.request(messages, params)

    def raw_request(prompt: str, param: str, params: SamplingParams):
        check_tokens(lambda: prompt, param)
        return engine.request(params=params, prompt=prompt, raw=True)

    @app.get("/health")
    async def health(request: Request):
        layer = engine.safety
        screened = {"safety": "off"} if layer is None else {"safety": "on", "safety_layers": layer.layers,
                                                             "refusals": dict(layer.counts)}
        return {"status": "ok", "model": engine.name, **request.app.state.scheduler.stats(), **screened}

    @app.get("/v1/models")
    async def models():
        return api.models_list(engine.name, created, engine.context_length)

    @app.get("/v1/models/{model_id:path}")  # the openai client's models.retrieve
    async def model(model_id: str):
        if model_id != engine.name:
            raise api.APIError(404, f"The model '{model_id}' does not exist; this server serves '{engine.name}'",
                               "model", "model_not_found")
        return api.models_list(engine.name, created, engine.context_length)["data"][0]

    @app.post("/v1/chat/completions")
    async def chat(body: api.ChatRequest, request: Request):
        params = check(body, body.max_completion_tokens)
        messages = [m.to_message() for m in body.messages]
        [job] = await submit(request, [lambda: chat_request(messages, params)], body.stream)
        ident = api.new_id("chatcmpl")
        if body.stream:
            usage = bool(body.stream_options and body.stream_options.include_usage)
            return StreamingResponse(_chat_events(job, ident, engine.name, usage), media_type="text/event-stream")
        gen = await _result(job, request)
        return api.chat_completion(gen, engine.name, ident, api.now())

    @app.post("/v1/completions")
    async def completions(body: api.CompletionRequest, request: Request):
        params = check(body, None)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        if not prompts or (body.stream and len(prompts) > 1):
            raise api.APIError(400, "prompt: give one prompt (or, unstreamed, a non-empty list)", "prompt")
        if len(prompts) > limits.max_prompts:
            raise api.APIError(400, f"prompt: {len(prompts)} prompts in one request, above this server's limit of "
                               f"{limits.max_prompts} (--max-prompts)", "prompt")
        names = ["prompt"] if isinstance(body.prompt, str) else [f"prompt[{i}]" for i in range(len(prompts))]
        jobs = await submit(request, [lambda p=p, name=name: raw_request(p, name, params)
                                      for p, name in zip(prompts, names)], body.stream)
        ident = api.new_id("cmpl")
        if body.stream:
            return StreamingResponse(_completion_events(jobs[0], ident, engine.name), media_type="text/event-stream")
        try:
            gens = [await _result(job, request) for job in jobs]
        finally:  # a client that left (or a prompt that failed) stops every prompt of the request, not just one
            for job in jobs:
                job.cancel()
        return api.completion(gens, engine.name, ident, api.now())

    return app


class _Authorize:
    """The key check, before the body is read: a caller without the key learns nothing about the request's
    validity. Every route but /health: the docs and the schema describe the API to whoever holds the key.
    Plain ASGI, not @app.middleware("http"): Starlette's BaseHTTPMiddleware hides the client's disconnect from
    request.is_disconnected(), so an unstreamed request ran on after its client had left."""

    def __init__(self, app, api_key: str | None):
        self.app, self.api_key = app, api_key

    async def __call__(self, scope, receive, send):
        connection = HTTPConnection(scope) if scope["type"] == "http" else None
        if connection is not None and connection.url.path not in OPEN_WITH_A_KEY:
            try:
                check_key(self.api_key, connection.headers.get("authorization"))
            except api.APIError as error:
                await _answer(error, scope, receive, send)
                return
        await self.app(scope, receive, send)


class _LimitBody:
    """--max-body-mb, before the app reads the body (FastAPI reads a JSON body whole; uvicorn sets no cap): a
    Content-Length over the cap is a 413 with the body unread, and a body sent without one (chunked) is read only
    up to the cap. The body is handed on as received, and the client's later messages (its disconnect) after it."""

    def __init__(self, app, limits: RequestLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > self.limits.max_body_bytes:
            await _answer(self.too_large(f" ({int(declared)} bytes)"), scope, receive, send)
            return
        received, size = [], 0
        while True:
            message = await receive()
            received.append(message)
            size += len(message.get("body", b""))
            if size > self.limits.max_body_bytes:
                await _answer(self.too_large(""), scope, receive, send)
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break

        async def replay():
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    def too_large(self, size: str) -> api.APIError:
        return api.APIError(413, f"the request body{size} is over this server's limit of {self.limits.max_body_mb} "
                                 "MB (--max-body-mb)")


async def _answer(error: api.APIError, scope, receive, send) -> None:
    await JSONResponse(error.body(), status_code=error.status)(scope, receive, send)


def check_key(expected: str | None, authorization: str | None) -> None:
    if expected is None:
        return
    if not authorization:
        raise api.APIError(401, "You didn't provide an API key: send the header 'Authorization: Bearer KEY'",
                           code="invalid_api_key")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise api.APIError(401, "Incorrect API key provided", code="invalid_api_key")


def _code(message: str) -> str | None:
    return "context_length_exceeded" if "context window" in message else None


async def _events(job: Job):
    """The job's Deltas, then its Generation; a failure in the engine becomes a 500-type error."""
    while True:
        item = await job.events.get()
        if isinstance(item, Exception):
            raise api.APIError(500, f"generation failed: {item}", kind="server_error")
        yield item
        if not isinstance(item, Delta):
            return


async def _result(job: Job, request: Request):
    """The finished Generation; a client that hangs up meanwhile cancels its job."""
    try:
        while True:
            try:
                item = await asyncio.wait_for(job.events.get(), timeout=0.5)
            except asyncio.TimeoutError:
                if await request.is_disconnected():
                    raise api.APIError(499, "client closed the request") from None
                continue
            if isinstance(item, Exception):
                raise api.APIError(500, f"generation failed: {item}", kind="server_error")
            return item
    finally:
        job.cancel()  # a no-op once finished; frees the slot if the client left


async def _chat_events(job: Job, ident: str, model: str, include_usage: bool):
    created = api.now()
    try:
        yield _sse(api.chat_chunk(ident, created, model, {"role": "assistant", "content": ""}))
        async for item in _events(job):
            if isinstance(item, Delta):
                key = "reasoning_content" if item.kind == REASONING else "content"
                yield _sse(api.chat_chunk(ident, created, model, {key: item.text}))
            else:
                yield _sse(api.chat_chunk(ident, created, model, {}, api.finish_reason(item), item))
                if include_usage:
                    yield _sse(api.usage_chunk(ident, created, model, "chat.completion.chunk", item))
        yield "data: [DONE]\n\n"
    except api.APIError as error:
        yield _sse(error.body())
    finally:
        job.cancel()  # the client left (or we are done): stop generating for it


async def _completion_events(job: Job, ident: str, model: str):
    created = api.now()
    try:
        async for item in _events(job):
            if isinstance(item, Delta):
                yield _sse(api.completion_chunk(ident, created, model, item.text))
            else:
                yield _sse(api.completion_chunk(ident, created, model, "", api.finish_reason(item), item))
        yield "data: [DONE]\n\n"
    except api.APIError as error:
        yield _sse(error.body())
    finally:
        job.cancel()


def _sse(payload: dict) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"
