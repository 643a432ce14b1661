"""Training throughput, in one process on the same model, data, LoRA adapter, seed and steps:

  (a) medtune's default ("auto" batch layout) and its other layouts: padding-free concatenated batches,
      length-grouped padded batches, plain padded batches,
  (b) a plain transformers Trainer + PEFT, every example padded to 512 tokens (the common recipe),
  (c) TRL's SFTTrainer with its defaults, given the same examples as prompt/completion text.

Prints supervised (loss-bearing) tokens per second, peak memory, the final train loss and a validation loss
computed the same way for all (mean NLL of the answer tokens of the held-out split), and the ratios.
Every example of the training set is seen exactly once, so each variant trains on the same supervised tokens.

Speed is supervised tokens per CPU-second of the process (per wall second on a GPU), over --repeat interleaved
rounds, with torch on --threads threads (default 1): on a shared machine wall time mostly measures the neighbours.
Each variant's line gives the mean of its rounds with a 95% t-interval, and each ratio is the mean of the per-round
ratios (the variants of a round ran side by side) with its interval: one round cannot tell 0.98x from 1.16x.
--only keeps some variants (the layout question: --only auto,padding_free,grouped,none). Wall seconds are printed
too.

The default model is `new-model --size medium` (~27M parameters): on the tiny sizes a step is mostly per-call
overhead, which flatters batched layouts; real models (billions of parameters) are dominated by the matrix
products, like medium.

Run: .venv/bin/python bench/train_throughput.py [--size medium] [--steps 8] [--batch 4] [--repeat 3] [--json F]
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import tempfile
import threading
import time
from pathlib import Path

import torch

from medtune import config as config_mod
from medtune.data.pipeline import prepare
from medtune.models.gguf import local_folder
from medtune.models.load import default_device, load_tokenizer
from medtune.models.tiny import build_tiny_model

SAMPLE = Path(__file__).resolve().parents[1] / "tests" / "data" / "medical_o1_sample.jsonl"
PAD_TO = 512  # the default --max-length: (b) pads every example to it


class PeakMemory:
    """Peak memory of one variant: CUDA max allocated; on CPU the heap in use (glibc mallinfo2, where torch's CPU
    tensors live) sampled every 20 ms, above its level at the start. Resident-set size would hide a variant's
    peak in pages an earlier variant already touched. mallinfo2 walks the heap under its lock: sampled every 2 ms
    it took a fifth of a run's CPU-seconds and slowed the training thread, so it samples every 20 ms (the same
    peaks) and its own CPU time is measured for the timer to leave out."""

    def __enter__(self):
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        self.base = self.peak = heap_in_use()
        self.running = True
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        self.clock = time.pthread_getcpuclockid(self.thread.ident)
        return self

    def sampler_cpu(self) -> float:
        """CPU-seconds the sampling thread has used so far."""
        return time.clock_gettime(self.clock) if self.running else self.final_cpu

    def _sample(self):
        while self.running:
            self.peak = max(self.peak, heap_in_use())
            time.sleep(0.02)

    def __exit__(self, *exc):
        self.final_cpu = time.clock_gettime(self.clock)
        self.running = False
        self.thread.join()
        cuda = torch.cuda.max_memory_allocated() if torch.cuda.is_available() else 0
        self.mb = (cuda or self.peak - self.base) / 2**20


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                               "fsmblks", "uordblks", "fordblks", "keepcost")]


def heap_in_use() -> int:
    """Bytes malloc has handed out and not taken back (small blocks + mmapped big ones); RSS where not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
        return info.uordblks + info.hblkhd
    except (OSError, AttributeError):
        import psutil

        return psutil.Process().memory_info().rss


def timer_callback(mem: PeakMemory):
    """Wall and process-CPU seconds from the start of training to the end of its last step (saving excluded),
    less the memory sampler's CPU."""
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def cpu_now(self):
            return time.process_time() - mem.sampler_cpu()

        def on_train_begin(self, args, state, control, **kwargs):
            self.start, self.cpu_start = time.perf_counter(), self.cpu_now()

        def on_step_end(self, args, state, control, **kwargs):
            self.wall = time.perf_counter() - self.start
            self.cpu = self.cpu_now() - self.cpu_start

    return Timer()


def run(name: str, trainer, supervised: int, valid) -> dict:
    # each keeps its own progress bar (on stderr), as a user would see it
    with PeakMemory() as mem:
        timer = timer_callback(mem)
        trainer.add_callback(timer)
        trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    seconds = timer.wall if torch.cuda.is_available() else timer.cpu
    return {"variant": name, "seconds": round(seconds, 2), "wall_seconds": round(timer.wall, 2),
            "supervised_tokens": supervised, "tokens_per_s": round(supervised / seconds, 1),
            "peak_mb": round(mem.mb, 1), "train_loss": round(sum(losses[-5:]) / len(losses[-5:]), 4),
            "val_loss": round(val_loss(trainer.model, valid), 4)}


def val_loss(model, valid) -> float:
    """Mean NLL of the trained (answer) tokens of the validation examples, one example at a time."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    with torch.no_grad():
        for e in valid:
            ids = torch.tensor([e.input_ids], device=device)
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), -1)
            keep = torch.tensor(e.mask[1:], device=device).bool()
            total -= logp[torch.arange(len(e.input_ids) - 1, device=device), ids[0, 1:]][keep].sum().item()
            count += int(keep.sum())
    return total / max(count, 1)


def supervised_tokens(encoded) -> int:
    return sum(sum(e.mask[1:]) for e in encoded)  # position 0 is never a target


# ---------------------------------------------------------------- (a) medtune


def medtune_trainer(cfg, tokenizer, train, packing: str, out: Path):
    from medtune.rundir import RunDir
    from medtune.training import args as args_mod
    from medtune.training.examples import to_dataset
    from medtune.training.trainer import build

    cfg = config_mod.from_dict({**cfg.to_dict(), "output_dir": str(out), "training": {
        **cfg.to_dict()["training"], "packing": packing}})
    plan = args_mod.plan(cfg, has_eval=False, n_train=len(train), varlen_attention=args_mod.varlen_attention(cfg))
    quiet = io.StringIO()  # medtune's progress lines would interleave with the table
    return build(cfg, RunDir(out), {"train": to_dataset(train)}, tokenizer, plan, stream=quiet).trainer


# ---------------------------------------------------------------- (b) plain Trainer + PEFT, padded to 512


def padded_trainer(cfg, tokenizer, train, peft_config, out: Path):
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator

    pad = tokenizer.pad_token_id
    rows = {"input_ids": [], "attention_mask": [], "labels": []}
    for e in train:
        n = cfg.model.max_length - e.length
        rows["input_ids"].append(e.input_ids + [pad] * n)
        rows["attention_mask"].append([1] * e.length + [0] * n)
        rows["labels"].append([t if m else -100 for t, m in zip(e.input_ids, e.mask)] + [-100] * n)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(cfg.model.name), peft_config)
    args = TrainingArguments(output_dir=str(out), save_strategy="no", report_to="none", **common_args(cfg))
    return Trainer(model=model, args=args, train_dataset=Dataset.from_dict(rows), data_collator=default_data_collator)


def common_args(cfg) -> dict:
    t = cfg.training
    return dict(per_device_train_batch_size=t.batch_size, gradient_accumulation_steps=t.gradient_accumulation_steps,
                max_steps=t.max_steps, learning_rate=t.learning_rate, lr_scheduler_type=t.lr_scheduler,
                logging_steps=1, seed=cfg.seed, use_cpu=default_device() == "cpu")


# ---------------------------------------------------------------- (c) TRL SFTTrainer defaults


def trl_trainer(cfg, tokenizer, records, peft_config, out: Path):
    """SFTConfig defaults (gradient checkpointing on, no padding-free, loss on the completion) with the same
    steps, batch, learning rate and seed; bf16 off on CPU like the others (this VM's CPU faults on bf16 GEMMs)."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import SFTConfig, SFTTrainer

    from medtune.data.templates import render

    prompts, completions = [], []
    for r in records:
        rendered = render(r, tokenizer, cfg.data.template, cfg.data.system_prompt, cfg.data.reasoning == "keep")
        cut = rendered.spans[0][0]
        prompts.append(rendered.text[:cut])
        completions.append(rendered.text[cut:])
    args = SFTConfig(output_dir=str(out), save_strategy="no", report_to="none", bf16=default_device() != "cpu",
                     **common_args(cfg))
    data = Dataset.from_dict({"prompt": prompts, "completion": completions})
    return SFTTrainer(model=AutoModelForCausalLM.from_pretrained(cfg.model.name), args=args, train_dataset=data,
                      processing_class=tokenizer, peft_config=peft_config)


def trl_supervised(trainer) -> int:
    return sum(sum(1 for t in row["labels"][1:] if t != -100) for row in trainer.train_dataset)


# ---------------------------------------------------------------- main


def setup(a, tmp: Path):
    # a .gguf file or the built-in name: the converted folder, which (b) and (c) load with plain from_pretrained
    model_dir = Path(local_folder(a.model)) if a.model else build_tiny_model(a.arch, tmp / "model", size=a.size,
                                                                              seed=0)
    cfg = config_mod.load(None, values={
        "model.name": str(model_dir), "model.max_length": a.max_length, "data.train_file": str(a.data), "seed": 0,
        "data.overlong": "truncate", "data.reasoning": a.reasoning, "lora.dropout": 0.0, "lora.r": 16,
        "lora.target_modules": "all-linear", "training.batch_size": a.batch, "training.learning_rate": 1e-3,
        "training.gradient_accumulation_steps": a.accum, "training.max_steps": a.steps, "training.logging_steps": 1})
    tokenizer = load_tokenizer(cfg.model)
    prepared = prepare(cfg, tokenizer)
    need = a.steps * a.batch * a.accum
    train = prepared.encoded["train"][:need]
    if len(train) < need:
        raise SystemExit(f"only {len(train)} training examples for {need} (steps x batch x accumulation)")
    by_source = {r.source: r for r in prepared.splits["train"]}
    return cfg, tokenizer, train, [by_source[e.source] for e in train], prepared.encoded["valid"]


def variants(cfg, tokenizer, train, records, peft_config, tmp: Path):
    """(name, make trainer, supervised tokens or None = count from the trainer's own dataset)."""
    out = [(f"(a) medtune {p}", lambda p=p: medtune_trainer(cfg, tokenizer, train, p, tmp / p))
           for p in ("auto", "padding_free", "grouped", "none")]
    out.append((f"(b) Trainer+PEFT pad {cfg.model.max_length}",
                lambda: padded_trainer(cfg, tokenizer, train, peft_config, tmp / "b")))
    out.append(("(c) TRL SFTTrainer defaults", lambda: trl_trainer(cfg, tokenizer, records, peft_config, tmp / "c")))
    return out


def measure(makers, supervised: int, valid, repeat: int) -> list[list[dict]]:
    """Every variant once per round, rounds interleaved; the rounds of each variant, in the makers' order."""
    from transformers import set_seed

    rounds: dict[str, list[dict]] = {name: [] for name, _ in makers}
    for _ in range(repeat):
        for name, make in makers:
            set_seed(0)
            trainer = make()
            sup = trl_supervised(trainer) if name.startswith("(c)") else supervised
            row = run(name, trainer, sup, valid)
            rounds[name].append(row)
            print(fmt(row), flush=True)
    return [rounds[name] for name, _ in makers]


def interval(values: list[float]) -> tuple[float, float, float]:
    """(mean, low, high): a 95% t-interval of the mean (the mean alone for one value)."""
    import statistics

    from scipy import stats

    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5
    return mean, mean - half, mean + half


def summary(rounds: list[dict]) -> dict:
    """A variant's rounds as one row: mean tokens/s with its interval, the rest from the mean of the rounds."""
    speeds = [r["tokens_per_s"] for r in rounds]
    mean, low, high = interval(speeds)
    return {**rounds[0], "tokens_per_s": round(mean, 1), "tokens_per_s_ci": [round(low, 1), round(high, 1)],
            "rounds": len(rounds), "seconds": round(sum(r["seconds"] for r in rounds) / len(rounds), 2),
            "wall_seconds": round(sum(r["wall_seconds"] for r in rounds) / len(rounds), 2),
            "peak_mb": max(r["peak_mb"] for r in rounds)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="model folder, .gguf file or smollm2-135m-instruct (default: a new tiny model of "
                                    "--arch/--size)")
    p.add_argument("--arch", default="llama")
    p.add_argument("--size", default="medium", choices=["tiny", "small", "medium"])
    p.add_argument("--data", default=str(SAMPLE))
    p.add_argument("--reasoning", default="drop", choices=["keep", "drop"],
                   help="drop (default): answers only, so lengths spread below 512 with the tiny tokenizers")
    p.add_argument("--max-length", type=int, default=PAD_TO, help="model.max_length; (b) pads to it")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--accum", type=int, default=1)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--only", help="comma-separated variants to run: auto, padding_free, grouped, none, b, c")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the rows here")
    a = p.parse_args()
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from medtune.models.lora import build_peft_config

    hf_logging.set_verbosity_error()
    torch.set_num_threads(a.threads)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cfg, tokenizer, train, records, valid = setup(a, tmp)
        peft_config = build_peft_config(cfg.lora, AutoModelForCausalLM.from_pretrained(cfg.model.name))
        sup = supervised_tokens(train)
        lengths = sorted(e.length for e in train)
        print(f"{default_device()} ({a.threads} thread(s)), {cfg.model.name}: {len(train)} examples (tokens p50 "
              f"{lengths[len(lengths) // 2]}, mean {sum(lengths) / len(lengths):.0f}, max {lengths[-1]}), "
              f"{sup:,} supervised tokens, {a.steps} steps x batch {a.batch} x accumulation {a.accum}")
        print(fmt(None))
        makers = variants(cfg, tokenizer, train, records, peft_config, tmp)
        if a.only:
            keep = set(a.only.split(","))
            makers = [(n, m) for n, m in makers if n.split()[-1] in keep or n[1] in keep or
                      any(n.startswith(f"(a) medtune {k}") for k in keep)]
        rounds = measure(makers, sup, valid, a.repeat)
    rows = [summary(r) for r in rounds]
    print(f"\nmean of {a.repeat} round(s), 95% interval:\n" + fmt(None) + "\n" + "\n".join(fmt(r) for r in rows))
    report(rows, rounds, a.json)


def fmt(row: dict | None) -> str:
    if row is None:
        return (f"{'variant':30} {'sup tok/s':>10} {'95% interval':>15} {'peak MB':>8} {'train loss':>10} "
                f"{'val loss':>9} {'seconds':>8} {'wall s':>7}")
    ci = row.get("tokens_per_s_ci")
    ci = f"[{ci[0]:,.0f}, {ci[1]:,.0f}]" if ci and row.get("rounds", 1) > 1 else ""
    return (f"{row['variant']:30} {row['tokens_per_s']:>10,.0f} {ci:>15} {row['peak_mb']:>8,.0f} "
            f"{row['train_loss']:>10.4f} {row['val_loss']:>9.4f} {row['seconds']:>8.2f} {row['wall_seconds']:>7.2f}")


def report(rows: list[dict], rounds: list[list[dict]], path: str | None) -> None:
    """The first variant against each other one: the mean of the per-round speed ratios with its interval."""
    for row, other in zip(rows[1:], rounds[1:]):
        ratios = [a["tokens_per_s"] / b["tokens_per_s"] for a, b in zip(rounds[0], other)]
        mean, low, high = interval(ratios)
        span = f" [{low:.2f}, {high:.2f}]" if len(ratios) > 1 else ""
        print(f"{rows[0]['variant']} / {row['variant']}: {mean:.2f}x{span} supervised tokens/s, "
              f"{rows[0]['peak_mb'] / max(row['peak_mb'], 1e-9):.2f}x peak memory")
    if path:
        Path(path).write_text(json.dumps({"summary": rows, "rounds": rounds}, indent=2) + "\n")


if __name__ == "__main__":
    main()
