"""Using a model: the one engine (engine.py) behind `medtune generate`, `chat`, `serve`, eval and the web page.

    engine.py         Engine: prompts built as training built them, batched and streamed generation, safety
    weights.py        which weights to load (base, base + adapter, run directory, merged folder) and their config
    params.py         SamplingParams, their checks, and the transformers GenerationConfig they become
    decoding.py       per-row bookkeeping while model.generate runs a batch: new tokens, stops, cancellation
    reasoning.py      generated text split into reasoning (<think>...</think>) and answer, streamed or whole
    answer_gate.py    streamed answer text held back until the safety layer's answer rules have passed it
    stream.py         a streamed generation: the engine in a worker thread, Deltas over a queue
    chat.py           a multi-turn chat session and its /commands (used by `medtune chat`)
    display.py        terminal output shared by generate and chat: reasoning, answer, statistics line
    server.py         the OpenAI-compatible HTTP API (FastAPI) that `medtune serve` runs
    scheduler.py      the server's queue: waiting requests run together in batches, in a worker thread
    openai_api.py     the OpenAI wire format: request models, response and stream-chunk bodies
    server_errors.py  every server error in OpenAI's error shape
    limits.py         how big one served request may be: body size, prompts, prompt tokens
    vllm_engine.py    generation handed to vLLM (--engine vllm of eval and serve), same prompts and scoring
    vllm_requests.py  medtune's requests to vLLM's arguments and back, as pure functions
    llama_cpp_engine.py   generation in llama.cpp (--engine llama.cpp, auto on a CPU), same prompts and safety layer
    mlx_engine.py         generation in mlx-lm (--engine mlx, auto on Apple silicon), same prompts and safety layer
    llama_cpp_process.py  llama.cpp's child process, parent side: a crash is one line, not the end of the server
    llama_cpp_worker.py   llama.cpp's child process itself: one GGUF model, token by token over its pipes
    llama_cpp_sampling.py transformers' sampling rules in numpy, on llama.cpp's logits

The verbs themselves (flags and main) are in medtune.commands: generate.py, chat.py, serve.py.
"""
