"""`medtune serve`: an OpenAI-compatible HTTP API (FastAPI + uvicorn) on the shared engine.

    medtune serve --run runs/phi4-med [--port 8000] [--host 127.0.0.1] [--api-key KEY] [--engine ENGINE]

GET /health, GET /v1/models, POST /v1/chat/completions (streamed as server-sent events or not),
POST /v1/completions. Binds 127.0.0.1 unless told otherwise. With --api-key (or the MEDTUNE_API_KEY environment
variable, the place for the secret) every route but /health (a load balancer's probe) needs "Authorization: Bearer
KEY", /docs and /openapi.json included. A body over --max-body-mb is a 413, more prompts than --max-prompts or a
prompt over --max-prompt-tokens a 400, before any work. Requests queue and run in batches; a client that leaves
stops its generation. The engine (--engine auto by default) is llama.cpp on a machine without a CUDA GPU where
llama-cpp-python is installed (requests one after another, streamed token by token, llama.cpp in a child process
whose crash fails the requests in flight, not the server; see inference/llama_cpp_engine.py), else transformers;
--engine vllm runs each batch in vLLM (a CUDA GPU): the same API, prompts and safety layer, a streamed reply arriving
whole when its batch ends (see inference/vllm_engine.py).
"""

from __future__ import annotations

import argparse
import os

from medtune.commands.args import (
    add_engine_argument,
    add_model_arguments,
    add_sampling_arguments,
    engine_config,
    load_engine,
    positive_int,
    sampling_params,
)
from medtune.inference.limits import RequestLimits

API_KEY_ENV = "MEDTUNE_API_KEY"
LIMITS = RequestLimits()  # the defaults of --max-body-mb, --max-prompts, --max-prompt-tokens
ENGINE_NOTE = ("; medtune's queue still forms the batches (raise --max-batch, e.g. 64, for vllm; llama.cpp works "
               "through a batch one request at a time) and a streamed reply from vllm arrives whole when its batch "
               "ends")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    add_model_arguments(parser)
    add_sampling_arguments(parser)
    group = parser.add_argument_group("server")
    group.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    group.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    group.add_argument("--api-key", help=f"require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV} if set)")
    group.add_argument("--max-tokens-cap", type=positive_int, default=4096, help="largest max_tokens a request may ask")
    group.add_argument("--max-batch", type=positive_int, default=16, help="requests generated together at most")
    group.add_argument("--max-body-mb", type=positive_int, default=LIMITS.max_body_mb,
                       help="largest request body in MB, refused unread with a 413 (default %(default)s)")
    group.add_argument("--max-prompts", type=positive_int, default=LIMITS.max_prompts,
                       help="most prompts one /v1/completions request may send (default %(default)s)")
    group.add_argument("--max-prompt-tokens", type=positive_int, default=LIMITS.max_prompt_tokens,
                       help="most tokens one prompt may have (default: the model's context window)")
    group.add_argument("--served-model-name", help="model id clients use (default: the run or model folder name)")
    add_engine_argument(group, ENGINE_NOTE)


def main(args: argparse.Namespace) -> int:
    import uvicorn

    from medtune.evaluation.evaluate import engine_name
    from medtune.inference.server import create_app

    cfg = engine_config(args)
    defaults = sampling_params(cfg)
    engine = load_engine(args, cfg, args.engine)
    engine.name = args.served_model_name or engine.name
    defaults.max_tokens = min(defaults.max_tokens, args.max_tokens_cap)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    limits = RequestLimits(args.max_body_mb, args.max_prompts, args.max_prompt_tokens)
    app = create_app(engine, defaults, api_key=api_key, max_tokens_cap=args.max_tokens_cap,
                     max_batch=args.max_batch, limits=limits)
    auth = "API key required" if api_key else "no API key"
    screened = f"safety layer: {', '.join(engine.safety.layers)}" if engine.safety else "safety layer OFF"
    print(f"medtune serve: {engine.name} ({engine_name(engine)}) on http://{args.host}:{args.port}/v1 ({auth}; "
          f"{screened}); Ctrl-C stops", flush=True)
    if not api_key and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"medtune serve: warning: {args.host} is reachable from other machines and no API key is set "
              f"(--api-key or ${API_KEY_ENV})", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
