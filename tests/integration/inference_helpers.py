"""Models for the inference tests, built once per session (cached under pytest's base temp folder).

echo_model: the tiny llama trained for a few seconds until it answers four questions word for word, as
"<think>reasoning</think>answer<|end|>" (with or without the default system prompt), so tests can check
exact answers, reasoning, streaming and batching. make_run: a run directory with a perturbed LoRA adapter.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from medtune.config import DEFAULT_SYSTEM_PROMPT, Config

QA = [
    ("What is the antidote for paracetamol overdose?", "liver toxicity", "N-acetylcysteine"),
    ("First-line drug for type 2 diabetes?", "insulin resistance", "metformin"),
    ("Vitamin deficient in scurvy?", "collagen synthesis", "vitamin C"),
    ("Most common cause of community pneumonia?", "typical bacteria", "Streptococcus pneumoniae"),
]


def cached(tmp_path_factory, name: str, build) -> Path:
    """build(folder) once per session, whichever test module asks first."""
    folder = tmp_path_factory.getbasetemp() / "test-models" / name
    if not (folder / ".done").exists():
        shutil.rmtree(folder, ignore_errors=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        build(folder)
        (folder / ".done").touch()
    return folder


def train_echo_model(base: Path, out: Path, steps: int = 150) -> Path:
    """Copy `base` and overfit it on QA until greedy decoding reproduces every answer."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    texts = [_conversation(tok, q, r, a, system) for q, r, a in QA for system in (None, DEFAULT_SYSTEM_PROMPT)]
    tok.padding_side = "right"
    batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 140k-parameter model trains ~10x faster on one thread of a busy machine
    try:
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            model(**batch, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    shutil.copytree(base, out)
    model.save_pretrained(out)
    return out


def _conversation(tok, question, reasoning, answer, system):
    messages = [{"role": "system", "content": system}] if system else []
    messages += [{"role": "user", "content": question},
                 {"role": "assistant", "content": f"<think>{reasoning}</think>{answer}"}]
    return tok.apply_chat_template(messages, tokenize=False)


def make_run(model_dir: Path, run_dir: Path, scale: float = 0.5) -> Path:
    """A run directory as `medtune train` leaves it: config.yaml + adapter/ with non-zero LoRA B weights."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero: an untrained adapter changes nothing
                param.copy_(torch.randn(param.shape, generator=generator) * scale)
    run_dir.mkdir(parents=True, exist_ok=True)
    peft_model.save_pretrained(run_dir / "adapter")
    cfg = Config()
    cfg.model.name = str(model_dir)
    cfg.output_dir = str(run_dir)
    cfg.data.system_prompt = "You are a test assistant."
    cfg.save(run_dir / "config.yaml")
    return run_dir
