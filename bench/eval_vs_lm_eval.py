"""medtune eval's log-likelihood scoring against lm-evaluation-harness: same model, same items, same prompts.

    python bench/eval_vs_lm_eval.py                       # a fresh 'small' random llama, medqa, 200 items
    python bench/eval_vs_lm_eval.py --model DIR --task pubmedqa --limit 100
    python bench/eval_vs_lm_eval.py --model smollm2-135m-instruct   # the real built-in model

The lm-eval side is configured independently here (its own prompt functions, its HFLM model wrapper), so
prompts, tokenisation, truncation and the acc / acc_norm rules are all cross-checked. Needs `pip install lm-eval`.
Prints accuracies, the largest per-option log-likelihood difference and the per-item prediction agreement.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

EVAL_DIR = Path(__file__).resolve().parents[1] / "tests" / "data" / "eval"


def lm_eval_task(name: str, path: Path, fmt: str) -> dict:
    """An lm-eval multiple-choice task over a medtune MCQ file, written from lm-eval's own conventions."""

    def options(doc):  # datasets fills absent struct keys with None when files mix option counts
        return {k: v.strip() for k, v in doc["options"].items() if v is not None}

    def text_letters(doc):
        listed = "".join(f"{k}. {v}\n" for k, v in options(doc).items())
        return f"Question: {doc['question'].strip()}\n{listed}Answer:"

    def text_cloze(doc):
        return f"Question: {doc['question'].strip()}\nAnswer:"

    return {
        "task": f"medtune_{name}_{fmt}", "dataset_path": "json", "dataset_kwargs": {"data_files": {"test": str(path)}},
        "test_split": "test", "output_type": "multiple_choice",
        "doc_to_text": text_letters if fmt == "letters" else text_cloze,
        "doc_to_choice": (lambda d: list(options(d))) if fmt == "letters" else (lambda d: list(options(d).values())),
        "doc_to_target": lambda d: list(options(d)).index(d["answer"].strip()),
        "metric_list": [{"metric": "acc"}, {"metric": "acc_norm"}],
    }


def run_lm_eval(model, tokenizer, name, path, fmt, limit, batch_size):
    import torch
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    # a folder given by its path is loaded by lm-eval itself, on its default device (cuda) unless told otherwise
    device = {} if not isinstance(model, str) else {"device": "cuda" if torch.cuda.is_available() else "cpu"}
    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size, **device)
    task = lm_eval_task(name, path, fmt)
    out = simple_evaluate(model=lm, tasks=[task], limit=limit, log_samples=True, verbosity="ERROR")
    metrics = out["results"][task["task"]]
    samples = sorted(out["samples"][task["task"]], key=lambda s: s["doc_id"])
    lls = [[float(r[0][0]) for r in s["resps"]] for s in samples]
    return metrics["acc,none"], metrics["acc_norm,none"], lls


def run_medtune(model, tokenizer, name, data_dir, fmt, limit, batch_size):
    from medtune.evaluation.loglik import score_mcq
    from medtune.evaluation.tasks import load_task

    verdicts = score_mcq(model, tokenizer, load_task(name, str(data_dir), limit), fmt, batch_size)
    n = len(verdicts)
    acc = sum(v["correct"] for v in verdicts) / n
    return acc, sum(v["correct_norm"] for v in verdicts) / n, [v["logliks"] for v in verdicts]


def compare(model, tokenizer, args, fmt: str) -> bool:
    path = Path(args.data_dir) / f"{args.task}.jsonl"
    start = time.perf_counter()
    ref_acc, ref_norm, ref_lls = run_lm_eval(model, tokenizer, args.task, path, fmt, args.limit, args.batch_size)
    ref_s = time.perf_counter() - start
    start = time.perf_counter()
    acc, norm, lls = run_medtune(model, tokenizer, args.task, args.data_dir, fmt, args.limit, args.batch_size)
    ours_s = time.perf_counter() - start
    diff = max(abs(a - b) for x, y in zip(lls, ref_lls) for a, b in zip(x, y))
    same = sum(_argmax(x) == _argmax(y) for x, y in zip(lls, ref_lls))
    print(f"{args.task:<12} {fmt:<8} items {len(lls):>4} | lm-eval acc {ref_acc:.4f} acc_norm {ref_norm:.4f} "
          f"({ref_s:.1f}s) | medtune acc {acc:.4f} acc_norm {norm:.4f} ({ours_s:.1f}s) | "
          f"max |dLL| {diff:.2e}, same prediction {same}/{len(lls)}")
    return acc == ref_acc and norm == ref_norm and len(lls) == len(ref_lls)


def _argmax(values):
    return max(range(len(values)), key=lambda i: (values[i], -i))


def load_model(args):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.models.gguf import local_folder

    folder = local_folder(args.model) if args.model else None  # a .gguf file or the built-in name: its folder
    if folder is None:
        from medtune.models.tiny import build_tiny_model

        folder = build_tiny_model("llama", Path(tempfile.mkdtemp()) / "small-llama", size="small", seed=args.seed)
    return AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder, .gguf file or smollm2-135m-instruct (default: a fresh random "
                                        "'small' llama from new-model)")
    parser.add_argument("--task", default="medqa", help="a task name in --data-dir (default medqa)")
    parser.add_argument("--data-dir", default=str(EVAL_DIR), help="folder of <task>.jsonl files (default: the "
                        "bundled samples, 40-60 items each; give the full files' folder for 200 items)")
    parser.add_argument("--limit", type=int, default=200, help="first N items (default 200)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--formats", nargs="+", default=["letters", "cloze"], choices=["letters", "cloze"])
    parser.add_argument("--seed", type=int, default=0, help="seed of the random model")
    args = parser.parse_args()
    model, tokenizer = load_model(args)
    equal = [compare(model, tokenizer, args, fmt) for fmt in args.formats]
    print("accuracies equal" if all(equal) else "ACCURACIES DIFFER")
    return 0 if all(equal) else 1


if __name__ == "__main__":
    sys.exit(main())
