"""`medtune eval`: medical benchmarks, judged open-ended answers, and base versus tuned on the same items.

    medtune eval --model M [--adapter A | --run DIR] --task medqa --task my_mcq.jsonl --data-dir DIR
                 [--mode loglik|generate] [--limit N] [--seed S] [--batch-size B] [--out DIR]
    medtune eval --run DIR --compare-base --task test.jsonl --judge-url http://localhost:8000/v1
    medtune eval --task xstest_dev.jsonl --mode screen          # the safety layer alone: no model loads
    medtune eval --run DIR --compare-base --task xstest_dev.jsonl --mode generate   # refusals, model and layer
    medtune eval --run DIR --task medqa --mode generate --engine vllm --batch-size 256  # generation on vLLM (GPU)
    medtune eval --run DIR --task medqa --mode generate --engine llama.cpp   # generation in llama.cpp (a CPU)

Settings come from the eval section of the config (the run's own config.yaml when none is given), then
key=value overrides, then flags. Every task file, the judge (endpoint or local model) and the similarity model
are checked before any model loads. --engine vllm hands generation to vLLM, --engine llama.cpp to llama.cpp (a run
converted to a GGUF file once, at generation.gguf_quant), with the same prompts, stop tokens, reasoning split, safety
layer and scoring (log-likelihood scoring: llama.cpp's logits with llama.cpp, transformers with vllm);
results.json names the engine and the
quantization, and the default stays transformers, so a score does not depend on which packages are installed.
Writes results.json, items.jsonl, report.md, plots/ and the config.yaml it ran with into the output folder
(eval.out_dir, else <run>/eval, else <output_dir>/eval); when a judge grades, its cache (judge_cache.jsonl) goes
there too unless eval.judge_cache names another file.
"""

from __future__ import annotations

import argparse
import sys

from medtune.commands.args import (
    Flag,
    add_config_arguments,
    add_engine_argument,
    add_flags,
    choose_engine,
    config_from_args,
    engine_class,
    flag_values,
    given_config,
)
from medtune.errors import MedtuneError

WHAT = [
    Flag("--model", "model.name", {"help": "base model: hub id, local folder or .gguf file"}),
    Flag("--task", "eval.tasks", {"action": "append", "metavar": "TASK",
                                  "help": "medqa, medmcqa, pubmedqa, mmlu_medical, an MCQ file (medtune's schema or a "
                                          "MedQA, MedMCQA, MMLU or PubMedQA hub layout), an open-ended file with "
                                          "reference answers (prepare's test split, medical-o1 records), a safety "
                                          "file ({prompt, label: safe|unsafe} rows), or a hub dataset id; repeat "
                                          "for several"}),
    Flag("--data-dir", "eval.data_dir"),
    Flag("--hub-split", "eval.hub_split"),
    Flag("--hub-config", "eval.hub_config"),
    Flag("--compare-base", "eval.compare_base", {"action": "store_true"}),
    Flag("--compare-model", "eval.compare_model"),
]
HOW = [
    Flag("--mode", "eval.mode", {"choices": ("loglik", "generate", "screen")}),
    Flag("--mcq-format", "eval.mcq_format", {"choices": ("letters", "cloze")}),
    Flag("--limit", "eval.limit", {"type": int}),
    Flag("--seed", "seed", {"type": int}),
    Flag("--batch-size", "eval.batch_size", {"type": int}),
    Flag("--max-tokens", "eval.max_tokens", {"type": int}),
    Flag("--temperature", "eval.temperature", {"type": float}),
    Flag("--similarity-model", "eval.similarity_model"),
    Flag("--judge-url", "eval.judge_url"),
    Flag("--judge-model", "eval.judge_model"),
    Flag("--out", "eval.out_dir"),
]
ENGINE_NOTE = ("; eval's default is transformers, so a score does not depend on which packages are installed; vllm "
               "needs --mode generate (loglik scoring stays on transformers) and gets --batch-size prompts per call, "
               "so raise it (e.g. 256); a local judge stays on transformers")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    add_config_arguments(parser)
    what = parser.add_argument_group("what to evaluate")
    add_flags(what, WHAT)
    what.add_argument("--adapter", help="PEFT adapter folder on top of --model")
    what.add_argument("--run", help="a medtune run directory (its adapter and config.yaml)")
    how = parser.add_argument_group("how")
    add_flags(how, HOW)
    add_engine_argument(how, ENGINE_NOTE, default="transformers")


def main(args: argparse.Namespace) -> int:
    from medtune.evaluation.evaluate import evaluate, load_tasks, output_dir
    from medtune.evaluation.report import summary_lines, write_outputs
    from medtune.inference.weights import find_config
    from medtune.rundir import check_out_folder

    # the weights' own config.yaml when none is named, so prompts and the system prompt are training's
    beside = None if given_config(args) else find_config(args.model, args.adapter, args.run)
    cfg = config_from_args(args, flag_values(args, WHAT + HOW), beside)
    tasks = load_tasks(cfg)
    choice = choose_engine(args.engine)
    check_engine(choice.name, cfg, tasks)
    engine = engine_class(choice.name) if cfg.eval.mode != "screen" else None  # vLLM missing: one line, now
    if choice.why and engine is not None:
        print(f"medtune eval: engine {choice.name} (auto: {choice.why})", file=sys.stderr)
    out = output_dir(cfg, args.run)
    check_out_folder(out, "--out")
    if not any(t.uses_judge for t in tasks) and (cfg.eval.judge_url or cfg.eval.judge_model):
        print("medtune eval: note: the judge grades open-ended tasks only; none was given", file=sys.stderr)
    if cfg.eval.mode == "screen" and (args.model or args.adapter):
        print("medtune eval: note: screen mode runs the safety layer alone; no model loads", file=sys.stderr)
    results, records = evaluate(cfg, tasks, out, args.adapter, args.run, engine)
    write_outputs(out, results, records)
    cfg.save(out / "config.yaml")
    print("\n".join(summary_lines(results, out)))
    return 0


def check_engine(engine: str, cfg, tasks: list) -> None:
    """vLLM generates; scoring options by log-likelihood reads the model's logits, which stay on transformers."""
    if engine == "vllm" and any(t.needs_logits(cfg) for t in tasks):
        raise MedtuneError("--engine vllm generates answers, and --mode loglik (the default) scores multiple choice "
                           "on transformers: add --mode generate, or drop --engine vllm")
