"""bench/gpu_check.py --cpu-smoke: every case of the GPU check runs through `medtune train` on tiny models of the same
families (Phi-3, Llama) on the CPU, and the table, the ratios and the JSON come out; what needs CUDA or an absent
package is skipped with the line that says why."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "gpu_check.py"


@pytest.fixture(scope="module")
def smoke(tmp_path_factory, smollm2):
    out = tmp_path_factory.mktemp("gpu-check")
    done = subprocess.run([sys.executable, str(SCRIPT), "--cpu-smoke", "--out", str(out), "--tokenizer", str(smollm2)],
                          capture_output=True, text=True, timeout=600)
    return done, out


def test_every_case_runs_through_medtune_train_and_the_table_comes_out(smoke):
    done, out = smoke
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    rows = {r["case"]: r for r in report["rows"]}
    for name in ("lora-auto", "lora-padding-free", "lora-padded", "qlora-8b", "fsdp", "grpo"):
        assert rows[name]["status"] == "completed" and rows[name]["tokens_per_s"] > 0, rows[name]
        assert rows[name]["peak_gb"] > 0
    assert rows["lora-padding-free"]["packing"] == "padding_free" and rows["lora-padded"]["packing"] == "none"
    assert rows["lora-auto"]["packing"] in ("per_sequence", "grouped", "padding_free", "none")
    assert "case               shape           tokens/s    MFU  peak GB  plan GB" in done.stdout
    assert "padding-free / padded: " in done.stdout and "x tokens/s" in done.stdout
    assert report["environment"]["card"] == "cpu" and report["environment"]["torch"]


def test_the_cases_train_the_shapes_and_recipes_they_name(smoke):
    _, out = smoke
    phi3 = json.loads((out / "models" / "Phi-3-mini-4k-tiny" / "config.json").read_text())
    llama = json.loads((out / "models" / "Llama-3.1-8B-tiny" / "config.json").read_text())
    assert phi3["model_type"] == "phi3" and llama["model_type"] == "llama"
    assert phi3["vocab_size"] == 49152 and llama["vocab_size"] == 128256  # Phi-3's widened to the tokenizer's
    qlora = (out / "logs" / "qlora-8b.log").read_text()
    assert "method: qlora r=16 alpha=16" in qlora and "optimizer adamw_8bit" in qlora  # the T4 recipe's settings
    assert "memory plan: about" in qlora and "kernels: none (training.kernels: none)" in qlora
    assert yaml.safe_load((out / "configs" / "grpo.yaml").read_text())["training"]["stage"] == "grpo"
    lengths = [len(json.loads(line)["Complex_CoT"]) for line in (out / "medical_o1_lengths.jsonl").open()]
    assert len(lengths) == 40 and min(lengths) < max(lengths)  # the records' spread of lengths, not one length


def test_what_cannot_run_here_is_skipped_with_the_reason(smoke):
    _, out = smoke
    rows = {r["case"]: r for r in json.loads((out / "gpu_check.json").read_text())["rows"]}
    for name in ("lora-liger", "qlora-8b-liger"):
        assert rows[name]["status"].startswith("skipped: ")
        assert "pip install liger-kernel" in rows[name]["status"] or "needs a CUDA GPU" in rows[name]["status"]


def test_without_a_gpu_or_the_smoke_flag_it_says_what_to_do(tmp_path):
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2 and "no CUDA GPU here; --cpu-smoke runs every case" in done.stderr
