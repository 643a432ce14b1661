"""When lm-evaluation-harness is installed: medtune's loglik scores equal its scores on the same items.

The full comparison (200 items, both prompt styles) is bench/eval_vs_lm_eval.py; this is its quick version.
"""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")
BENCH = Path(__file__).resolve().parents[2] / "bench" / "eval_vs_lm_eval.py"
EVAL_DIR = BENCH.parents[1] / ".." / "shared" / "data" / "eval"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("eval_vs_lm_eval", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_same_scores_as_lm_eval(bench, tiny_llama, task="mmlu_medical", fmt="cloze"):
    """cloze: option texts of different lengths, so acc and acc_norm can differ (letters is covered by the bench)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    ref_acc, ref_norm, ref_lls = bench.run_lm_eval(model, tokenizer, task, EVAL_DIR / f"{task}.jsonl", fmt, 12, 4)
    acc, norm, lls = bench.run_medtune(model, tokenizer, task, EVAL_DIR, fmt, 12, 4)
    assert (acc, norm) == (ref_acc, ref_norm)
    assert [x for row in lls for x in row] == pytest.approx([x for row in ref_lls for x in row], abs=1e-4)
