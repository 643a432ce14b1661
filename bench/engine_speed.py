"""Engines side by side on one run: medtune's default engine (transformers, the run's dtype) against the llama.cpp
engine on the run converted to f16 and to q8_0 GGUF files, the same prompts, the same run, the run's generation
settings (greedy, its repetition penalty), --tokens new tokens at most, one question at a time as chat and serve
take them.

Each engine runs in a fresh process (so each one's peak memory is its own), loads, answers one warm-up question,
then the prompts --repeat times; tokens/s is the generated tokens over the wall time of the best round (prompt
processing included). The llama.cpp engine's memory is medtune's process (tokenizer, prompts) plus llama.cpp's
child process (the weights); the run is converted into <run>/gguf/ first, in a process of its own (neither timed nor
counted). The last column says how many answers have the default engine's tokens, and how many tokens they share on
average. No safety layer: it costs the same with every engine.

Run: .venv/bin/python bench/engine_speed.py [--run runs/quickstart] [--tokens 256] [--prompts 4] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

QUESTIONS = [
    "A 9-year-old boy with a history of painful swelling of hands and feet, recently emigrated from Kenya, presents "
    "with a laboratory finding of hemoglobin S. What is the diagnosis?",
    "What is the first-line treatment of anaphylaxis?",
    "A 45-year-old man has crushing chest pain radiating to the left arm. What is the first test?",
    "Which electrolyte disturbance causes peaked T waves?",
    "What is the antidote for paracetamol overdose?",
    "A child has a barking cough and stridor. What is the likely diagnosis?",
]
ENGINES = [("transformers", None), ("llama.cpp", "f16"), ("llama.cpp", "q8_0")]


def measure(run: str, engine: str, quant: str | None, tokens: int, prompts: int, repeat: int) -> dict:
    """In this process: load `engine` on `run`, warm up, answer the prompts `repeat` times; the figures."""
    import torch

    from medtune.commands.args import engine_class, sampling_params
    from medtune.config import load
    from medtune.rundir import RunDir

    overrides = [f"generation.max_tokens={tokens}"] + ([f"generation.gguf_quant={quant}"] if quant else [])
    cfg = load(RunDir(run).config, overrides)
    params = sampling_params(cfg)
    params.max_tokens = tokens
    started = time.perf_counter()
    loaded = engine_class(engine).load(run=run, config=cfg)
    load_s = time.perf_counter() - started
    loaded.generate([[{"role": "user", "content": "What is anemia?"}]], params)  # warm-up, untimed
    rounds = []
    for _ in range(repeat):
        start = time.perf_counter()
        gens = [loaded.generate([[{"role": "user", "content": q}]], params)[0] for q in QUESTIONS[:prompts]]
        rounds.append((time.perf_counter() - start, gens))
    seconds, gens = min(rounds, key=lambda r: r[0])
    made = sum(g.stats.generated_tokens for g in gens)
    own_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child_mb = max((g.stats.peak_memory_mb for g in gens), default=0.0) if engine == "llama.cpp" else 0.0
    dtype = str(getattr(getattr(loaded, "model", None), "dtype", "")).removeprefix("torch.")
    return {"engine": engine, "quant": quant or dtype, "load_s": round(load_s, 1), "tokens": made,
            "seconds": round(seconds, 2), "tokens_per_s": round(made / seconds, 1), "threads": torch.get_num_threads(),
            "memory_mb": round(own_mb + child_mb), "child_mb": round(child_mb),
            "token_ids": [g.token_ids for g in gens], "file": str(getattr(getattr(loaded, "gguf", None), "file", ""))}


def convert(run: str, quant: str) -> None:
    from medtune.config import load
    from medtune.export.gguf_cache import model_file
    from medtune.inference import weights
    from medtune.rundir import RunDir

    cfg = load(RunDir(run).config, [f"generation.gguf_quant={quant}"])
    model_file(weights.resolve(cfg, run=run))


def agreement(mine: list[list[int]], reference: list[list[int]]) -> str:
    same = sum(a == b for a, b in zip(mine, reference))
    shared = [next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
              for a, b in zip(mine, reference)]
    return f"{same}/{len(reference)} same, {sum(shared) / len(shared):.0f} tokens shared"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="runs/quickstart", help="run directory (default runs/quickstart)")
    parser.add_argument("--tokens", type=int, default=256, help="new tokens at most per answer (default 256)")
    parser.add_argument("--prompts", type=int, default=4, help=f"questions, at most {len(QUESTIONS)} (default 4)")
    parser.add_argument("--repeat", type=int, default=2, help="rounds; the best counts (default 2)")
    parser.add_argument("--one", nargs=2, metavar=("ENGINE", "QUANT"), help=argparse.SUPPRESS)  # a child's part
    parser.add_argument("--convert", metavar="QUANT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.convert:
        convert(args.run, args.convert)
        return
    if args.one:
        engine, quant = args.one
        print(json.dumps(measure(args.run, engine, None if quant == "-" else quant, args.tokens, args.prompts,
                                 args.repeat)))
        return
    for quant in {q for _, q in ENGINES if q}:  # converted first, in a process of its own: neither timed nor counted
        done = subprocess.run([sys.executable, __file__, "--run", args.run, "--convert", quant], capture_output=True,
                              text=True)
        if done.returncode:
            sys.exit(f"converting to {quant}: failed\n{done.stderr[-3000:]}")
    results = []
    for engine, quant in ENGINES:
        command = [sys.executable, __file__, "--run", args.run, "--tokens", str(args.tokens), "--prompts",
                   str(args.prompts), "--repeat", str(args.repeat), "--one", engine, quant or "-"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"{engine} {quant or ''}: failed\n{done.stderr[-3000:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    base = results[0]
    print(f"{args.run}: {args.prompts} questions one at a time, greedy with the run's generation settings, "
          f"{args.tokens} new tokens at most, best of {args.repeat}, {base['threads']} threads")
    print(f"{'engine':<22} {'tokens/s':>9} {'ratio':>6} {'peak memory':>28} {'load':>6}  tokens as transformers")
    for r in results:
        memory = f"{r['memory_mb']:,} MB" + (f" ({r['child_mb']:,} in llama.cpp's)" if r["child_mb"] else "")
        print(f"{r['engine'] + ' ' + r['quant']:<22} {r['tokens_per_s']:>9.1f} "
              f"{r['tokens_per_s'] / base['tokens_per_s']:>5.1f}x {memory:>28} {r['load_s']:>5.1f}s  "
              f"{agreement(r['token_ids'], base['token_ids'])}")


if __name__ == "__main__":
    main()
