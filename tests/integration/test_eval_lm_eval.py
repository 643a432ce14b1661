"""When lm-evaluation-harness is installed: medtune's loglik scores equal its scores on the same items.

The full comparison (200 items, both prompt styles) is bench/eval_vs_lm_eval.py; this is its quick version.
"""

import importlib.util
from pathlib import Path

import pytest

from fixture_data import EVAL_DIR

pytestmark = pytest.mark.slow  # runs lm-evaluation-harness and merges a model

pytest.importorskip("lm_eval")
BENCH = Path(__file__).resolve().parents[2] / "bench" / "eval_vs_lm_eval.py"


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


def test_lm_eval_loads_a_merged_folder_by_its_path_and_scores_base_plus_adapter(bench, tiny_llama, tmp_path,
                                                                               task="medqa", fmt="letters"):
    """`lm_eval --model hf --model_args pretrained=MERGED` as users run it: the folder `medtune merge` wrote
    loads by its path, and its log-likelihoods are medtune's on the base model with the adapter."""
    from inference_helpers import make_run
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from medtune.cli import main

    run = make_run(tiny_llama, tmp_path / "run")
    assert main(["merge", "--run", str(run), "--out", str(tmp_path / "merged")]) == 0
    ref_acc, _, ref_lls = bench.run_lm_eval(str(tmp_path / "merged"), None, task, EVAL_DIR / f"{task}.jsonl", fmt,
                                             6, 3)
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama), run / "adapter").eval()
    acc, _, lls = bench.run_medtune(tuned, AutoTokenizer.from_pretrained(tiny_llama), task, EVAL_DIR, fmt, 6, 3)
    assert acc == ref_acc
    assert [x for row in lls for x in row] == pytest.approx([x for row in ref_lls for x in row], abs=1e-4)
