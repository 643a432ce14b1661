"""Generation speed: the engine against a bare `model.generate` on the same token ids, and batched vs one by one.

Every row generates exactly --tokens new tokens (end-of-sequence ignored), so the figures compare like with like.
The engine's overhead (prompt bookkeeping, per-step row tracking, decoding, streaming through a thread) must
stay under 10% of bare generate. Each figure is the best of --repeat rounds after a warm-up.

Streaming is compared with the way transformers documents it (TextIteratorStreamer, generate in a thread): on a
CPU, torch work in a second thread after the main thread has run parallel torch work is slower in both (two
OpenMP thread teams on the same cores: 7-9% on an idle 2-core machine, more on a loaded one), so streamed rows are
slower than unstreamed ones in this process. The `medtune generate --stream` and `chat` processes do all their
generation in the stream's thread and do not pay it.

Run: .venv/bin/python bench/generate_speed.py [--model DIR] [--prompts 8] [--tokens 128] [--repeat 5] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import torch
from transformers import GenerationConfig

from medtune.data.records import Message
from medtune.inference.decoding import Row, RowTracker
from medtune.inference.engine import Engine, SamplingParams
from medtune.models.load import describe_device
from medtune.models.tiny import build_tiny_model

QUESTIONS = [
    "A 45-year-old man has crushing chest pain radiating to the left arm. What is the first test?",
    "What is the antidote for paracetamol overdose?",
    "Which vitamin deficiency causes scurvy?",
    "First-line drug for type 2 diabetes in an adult without contraindications?",
    "What is the most common cause of community-acquired pneumonia?",
    "A child has a barking cough and stridor. What is the likely diagnosis?",
    "Which electrolyte disturbance causes peaked T waves?",
    "What is the treatment of anaphylaxis?",
]


def bare(engine: Engine, prompts: list[list[int]], tokens: int, batch: int) -> int:
    """model.generate as a user would call it, greedy, on the engine's own token ids."""
    config = GenerationConfig(max_new_tokens=tokens, do_sample=False, eos_token_id=[],
                              pad_token_id=engine.pad_id)
    made = 0
    for start in range(0, len(prompts), batch):
        ids, mask = engine._left_pad(prompts[start:start + batch])
        out = engine.model.generate(input_ids=ids, attention_mask=mask, generation_config=config)
        made += (out.shape[1] - ids.shape[1]) * ids.shape[0]
    return made


def with_engine(engine: Engine, chats: list[list[Message]], params: SamplingParams, batch: int) -> int:
    return sum(g.stats.generated_tokens for g in engine.generate(chats, params, batch_size=batch))


def bare_streamed(engine: Engine, prompts: list[list[int]], tokens: int) -> int:
    """transformers' documented streaming: TextIteratorStreamer read in this thread, generate in another."""
    from transformers import TextIteratorStreamer

    config = GenerationConfig(max_new_tokens=tokens, do_sample=False, eos_token_id=[], pad_token_id=engine.pad_id)
    made = 0
    for prompt in prompts:
        ids, mask = engine._left_pad([prompt])
        streamer = TextIteratorStreamer(engine.tokenizer, skip_prompt=True)
        worker = threading.Thread(target=engine.model.generate, kwargs=dict(
            input_ids=ids, attention_mask=mask, generation_config=config, streamer=streamer))
        worker.start()
        for _ in streamer:
            pass
        worker.join()
        made += tokens
    return made


def streamed(engine: Engine, chats: list[list[Message]], params: SamplingParams) -> int:
    made = 0
    for chat in chats:
        stream = engine.stream(chat, params)
        for _ in stream:
            pass
        made += stream.generation.stats.generated_tokens
    return made


def bookkeeping_us(engine: Engine, tokens: int, live: bool) -> float:
    """Microseconds per step the engine adds to generate's loop (RowTracker: new token, stops, decoding for a
    listener): measured alone, so it is not lost in the noise of a shared machine."""
    ids = torch.randint(100, len(engine.tokenizer) - 10, (1, tokens))
    row = Row(engine.tokenizer, tokens + 1, engine.eos_ids, [], False, None,
              (lambda delta: None) if live else None, threading.Event())
    tracker = RowTracker([row])
    start = time.perf_counter()
    for i in range(1, tokens + 1):
        tracker(ids[:, :i], None)
    return (time.perf_counter() - start) / tokens * 1e6


def best_rates(runs: dict, repeat: int) -> dict[str, float]:
    """Tokens per second of each method's fastest round. Rounds interleave the methods, so a burst of load from
    other processes hits them all alike instead of one."""
    for run in runs.values():
        run()  # warm-up: first calls pay for allocations and kernel selection
    best = dict.fromkeys(runs, 0.0)
    for _ in range(repeat):
        for name, run in runs.items():
            start = time.perf_counter()
            made = run()
            best[name] = max(best[name], made / (time.perf_counter() - start))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder (default: a 'small' random llama, ~3M parameters)")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_tiny_model("llama", Path(tmp) / "small", size="small"))
        engine = Engine.load(model=model)
    chats = [[Message("user", QUESTIONS[i % len(QUESTIONS)])] for i in range(args.prompts)]
    prompts = [engine.encode(engine.prompt(c)) for c in chats]
    params = SamplingParams(max_tokens=args.tokens, ignore_eos=True)
    n = args.prompts
    runs = {
        "bare generate, one by one": lambda: bare(engine, prompts, args.tokens, 1),
        "engine generate, one by one": lambda: with_engine(engine, chats, params, 1),
        "bare streamed (TextIteratorStreamer)": lambda: bare_streamed(engine, prompts, args.tokens),
        "engine stream, one by one": lambda: streamed(engine, chats, params),
        f"bare generate, batch {n}": lambda: bare(engine, prompts, args.tokens, n),
        f"engine generate, batch {n}": lambda: with_engine(engine, chats, params, n),
    }
    report(list(best_rates(runs, args.repeat).items()), engine, args, sum(len(p) for p in prompts) / n)


def report(rows: list[tuple[str, float]], engine: Engine, args, prompt_len: float) -> None:
    print(f"model {engine.name} ({engine.model.num_parameters():,} parameters) on {describe_device()}, "
          f"{torch.get_num_threads()} torch threads; {args.prompts} prompts of ~{prompt_len:.0f} tokens, "
          f"{args.tokens} new tokens each, best of {args.repeat}")
    for name, rate in rows:
        print(f"  {name:<38} {rate:8.1f} tokens/s")
    rate = dict(rows)
    one, bare_stream, batch = (rows[i][1] for i in (0, 2, 4))
    print(f"engine overhead vs bare: one by one {100 * (1 - rows[1][1] / one):+.1f}%, "
          f"streamed {100 * (1 - rows[3][1] / bare_stream):+.1f}%, batched {100 * (1 - rows[5][1] / batch):+.1f}% "
          "(positive = slower)")
    print(f"batched vs one by one (engine): {rows[5][1] / rate['engine generate, one by one']:.2f}x")
    step_us = 1e6 / one
    plain, live = bookkeeping_us(engine, args.tokens, False), bookkeeping_us(engine, args.tokens, True)
    print(f"engine bookkeeping per decoding step: {plain:.0f} us, {live:.0f} us streamed "
          f"(= {100 * plain / step_us:.1f}% / {100 * live / step_us:.1f}% of a {step_us / 1000:.2f} ms step)")


if __name__ == "__main__":
    main()
