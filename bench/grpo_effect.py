"""What the GRPO stage did: the SFT run against the SFT + GRPO run on verifiable problems neither stage trained on,
and (--speed) what medtune's GRPO step costs next to TRL's own GRPOTrainer with its defaults on the same model and
data.

Effect: each run answers every held-out problem once, greedily, through the same engine (`--engine`, default auto:
llama.cpp where installed), with the GRPO run's prompt (template, system prompt), at most the GRPO run's
rl.max_completion_length new tokens and its repetition penalty. The answers are scored by the GRPO run's own
rewards (training/rewards.py) plus what a reader asks: the share that closes its reasoning within the budget, the
share with a parseable answer letter, and accuracy (Wilson 95% interval). Differences are GRPO - SFT per item, with
a paired-bootstrap interval (rates: McNemar's exact p).

Speed (--speed): --steps optimizer steps of the GRPO run's config (on a fresh adapter, in a scratch folder, at most
--speed-tokens completion tokens) through `medtune train`, and the same steps through a bare TRL GRPOTrainer (its
defaults; the same model, prompts, batch, group size, completion length and sampling, one reward) in a fresh process
each; seconds per step over the steps after the first, and the ratio.

Run: .venv/bin/python bench/grpo_effect.py [--sft runs/quickstart] [--grpo runs/quickstart-grpo]
         [--data src/medtune/assets/medical_o1_heldout_mcq.jsonl] [--limit N] [--speed --steps 4 --speed-tokens 64]
(the default data: the exam MCQ of the demo's 10 held-out records; a bigger held-out set: the MCQs of records the
runs never saw, e.g. those of medical-o1 outside medical_o1_demo.jsonl)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HELD_OUT = REPO / "src" / "medtune" / "assets" / "medical_o1_heldout_mcq.jsonl"


def problems(path: Path, limit: int | None):
    from medtune.data.formats import convert
    from medtune.data.sources import load_rows

    rows, _ = load_rows(str(path))
    records = convert(rows)
    return records[:limit] if limit else records


def answers(run: Path, records, cfg, engine_name: str) -> list:
    """Each record's completion text and token count from the run, greedy, within the GRPO budget."""
    from medtune.commands.args import engine_class
    from medtune.data.templates import with_system
    from medtune.inference.engine import SamplingParams

    engine = engine_class(engine_name).load(run=str(run), system_prompt=cfg.data.system_prompt)
    params = SamplingParams(max_tokens=cfg.rl.max_completion_length, temperature=0.0,
                            repetition_penalty=cfg.rl.repetition_penalty)
    out = []
    for record in records:
        asked = [m for m in with_system(record, cfg.data.system_prompt) if m.role != "assistant"]
        gen = engine.generate([asked], params)[0]
        out.append((engine.prompt(asked), gen.text, gen.token_ids))
    return out


def scores(records, generated, cfg) -> dict[str, list]:
    """Per item: each reward of the run, closed-within-budget, a parseable letter, correct."""
    from medtune.evaluation import scoring
    from medtune.inference.reasoning import prompt_opens_reasoning
    from medtune.training import rewards

    chosen = rewards.build(cfg)
    refs = [r.meta["verifiable"] for r in records]
    prompts, texts, ids = zip(*generated)
    columns = {"reference": [r.answer for r in refs], "answer_letter": [r.letter or "" for r in refs],
               "options": [json.dumps(r.options) for r in refs]}
    out = {f.__name__: f(list(prompts), list(texts), list(ids), **columns) for f in chosen.functions}
    parts = [scoring.split(t, prompt_opens_reasoning(p)) for p, t in zip(prompts, texts)]
    out["closed"] = [p.reasoning_finished and p.reasoning is not None for p in parts]
    out["letter"] = [scoring.mcq_choice(p, r.options) is not None if r.letter else None for p, r in zip(parts, refs)]
    out["correct"] = [scoring.mcq_choice(p, r.options) == r.letter if r.letter else None for p, r in zip(parts, refs)]
    out["tokens"] = [len(i) for i in ids]
    return out


def effect(args) -> None:
    from medtune import config as config_mod
    from medtune.evaluation import stats

    cfg = config_mod.load(args.grpo / "config.yaml")
    records = problems(args.data, args.limit)
    by_run = {}
    for name, run in (("sft", args.sft), ("grpo", args.grpo)):
        start = time.perf_counter()
        by_run[name] = scores(records, answers(run, records, cfg, args.engine), cfg)
        print(f"{name}: {len(records)} answers in {time.perf_counter() - start:.0f}s", file=sys.stderr)
    print(f"held-out problems: {args.data} ({len(records)}); greedy, at most {cfg.rl.max_completion_length} new "
          f"tokens, repetition penalty {cfg.rl.repetition_penalty:g}, engine {args.engine}")
    print(f"{'measure':<24}{'SFT':>10}{'SFT+GRPO':>10}{'GRPO - SFT [95% CI]':>32}{'p':>8}")
    for key, sft_values in by_run["sft"].items():
        grpo_values = by_run["grpo"][key]
        pairs = [(a, b) for a, b in zip(sft_values, grpo_values) if a is not None and b is not None]
        if not pairs:
            continue
        a, b = [float(x) for x, _ in pairs], [float(y) for _, y in pairs]
        boot = stats.paired_bootstrap(a, b)
        flags = all(isinstance(x, bool) for x, _ in pairs)
        p = stats.mcnemar([bool(x) for x in a], [bool(y) for y in b])["p_value"] if flags else \
            stats.paired_p_value(a, b)
        interval = f"{boot['delta']:+.3f} [{boot['ci95'][0]:+.3f}, {boot['ci95'][1]:+.3f}]"
        print(f"{key:<24}{sum(a) / len(a):>10.3f}{sum(b) / len(b):>10.3f}{interval:>32}{p:>8.3f}")
    for name in ("sft", "grpo"):
        correct = [c for c in by_run[name]["correct"] if c is not None]
        if correct:
            acc = stats.accuracy(correct)
            print(f"{name} accuracy {acc['accuracy']:.3f} [{acc['ci95'][0]:.3f}, {acc['ci95'][1]:.3f}] of "
                  f"{acc['items']} (chance about {chance(records):.3f})")


def chance(records) -> float:
    refs = [r.meta["verifiable"] for r in records if r.meta["verifiable"].letter]
    return sum(1 / len(r.options) for r in refs) / max(len(refs), 1)


MEDTUNE_STEPS = """
import json, sys, time
from transformers import TrainerCallback
from medtune import config
from medtune.training.run import train

class Clock(TrainerCallback):
    times = []
    def on_step_end(self, args, state, control, **kw):
        Clock.times.append(time.perf_counter())

cfg = config.load(sys.argv[1], [f"output_dir={sys.argv[2]}", f"training.max_steps={sys.argv[3]}",
                                f"rl.max_completion_length={sys.argv[4]}", "rl.init_from=null",
                                "training.eval_steps=null", "training.eval_on_start=false", "data.split=1,0",
                                "training.save_steps=1000000"])
train(cfg, callbacks=[Clock()])
print(json.dumps(Clock.times))
"""

TRL_STEPS = """
import json, sys, time
from datasets import Dataset
from peft import LoraConfig
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
from trl import GRPOConfig, GRPOTrainer
from medtune import config
from medtune.models import gguf
from medtune.models.load import load_tokenizer
from medtune.training.grpo import prompt_engine, prompt_rows
from medtune.data.pipeline import prepare

cfg = config.load(sys.argv[1], ["data.split=1,0", f"rl.max_completion_length={sys.argv[4]}"])
tok = load_tokenizer(cfg.model)
rows = prompt_rows(prompt_engine(cfg, tok), prepare(cfg, tok).splits["train"])
data = Dataset.from_list([{"prompt": r.prompt, "letter": r.reference.letter} for r in rows])
folder = gguf.local_folder(cfg.model.name, cfg.model.gguf_cache)

def mcq(completions, letter, **kw):  # the simplest reward: the gold letter anywhere in the answer
    return [float(f"answer is {g}" in c) for c, g in zip(completions, letter)]

class Clock(TrainerCallback):
    times = []
    def on_step_end(self, args, state, control, **kw):
        Clock.times.append(time.perf_counter())

rl, t = cfg.rl, cfg.training
args = GRPOConfig(output_dir=sys.argv[2], max_steps=int(sys.argv[3]), per_device_train_batch_size=t.batch_size,
                  gradient_accumulation_steps=t.gradient_accumulation_steps, num_generations=rl.num_generations,
                  max_completion_length=rl.max_completion_length, temperature=rl.temperature, top_p=rl.top_p,
                  repetition_penalty=rl.repetition_penalty, learning_rate=t.learning_rate, use_cpu=True,
                  report_to="none", save_strategy="no", logging_steps=1, seed=cfg.seed)
lora = LoraConfig(r=cfg.lora.r, lora_alpha=cfg.lora.alpha, lora_dropout=cfg.lora.dropout, target_modules="all-linear",
                  task_type="CAUSAL_LM")
trainer = GRPOTrainer(model=AutoModelForCausalLM.from_pretrained(folder), reward_funcs=[mcq], args=args,
                      train_dataset=data, processing_class=tok, peft_config=lora, callbacks=[Clock()])
trainer.train()
print(json.dumps(Clock.times))
"""


def speed(args) -> None:
    runs = {}
    for name, script in (("medtune", MEDTUNE_STEPS), ("TRL", TRL_STEPS)):
        with tempfile.TemporaryDirectory() as scratch:
            proc = subprocess.run([sys.executable, "-c", script, str(args.grpo / "config.yaml"),
                                   str(Path(scratch) / "run"), str(args.steps), str(args.speed_tokens)],
                                  capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            sys.exit(f"{name} failed:\n{proc.stderr[-3000:]}")
        times = json.loads(proc.stdout.strip().splitlines()[-1])
        runs[name] = (times[-1] - times[0]) / max(len(times) - 1, 1)
    print(f"GRPO seconds per step over steps 2-{args.steps} ({args.speed_tokens} completion tokens at most, a fresh "
          f"adapter): medtune {runs['medtune']:.1f}, TRL's GRPOTrainer {runs['TRL']:.1f} (medtune / TRL "
          f"{runs['medtune'] / runs['TRL']:.2f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sft", type=Path, default=REPO / "runs" / "quickstart")
    parser.add_argument("--grpo", type=Path, default=REPO / "runs" / "quickstart-grpo")
    parser.add_argument("--data", type=Path, default=HELD_OUT)
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--engine", default="auto", help="auto, transformers or llama.cpp")
    parser.add_argument("--speed", action="store_true", help="also time GRPO steps: medtune vs TRL's GRPOTrainer")
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--speed-tokens", type=int, default=64,
                        help="rl.max_completion_length of the timed steps (the effect uses the run's own)")
    args = parser.parse_args()
    effect(args)
    if args.speed:
        speed(args)


if __name__ == "__main__":
    main()
