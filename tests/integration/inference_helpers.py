"""What the inference tests share: the four questions the echo model (conftest.py) answers word for word, and
make_run, a run directory with a perturbed LoRA adapter."""

from __future__ import annotations

from pathlib import Path

from medtune.config import Config

QA = [
    ("What is the antidote for paracetamol overdose?", "liver toxicity", "N-acetylcysteine"),
    ("First-line drug for type 2 diabetes?", "insulin resistance", "metformin"),
    ("Vitamin deficient in scurvy?", "collagen synthesis", "vitamin C"),
    ("Most common cause of community pneumonia?", "typical bacteria", "Streptococcus pneumoniae"),
]


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


def peaked_llama(tokenizer_dir: Path, folder: Path):
    """(model, tokenizer): a tiny random Llama on a real tokenizer (SmolLM2's, registered with llama.cpp's converter),
    weights peaked enough that argmax ties are rare in f16, saved with the tokenizer into `folder`."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         initializer_range=0.2, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, tie_word_embeddings=False)
    model = LlamaForCausalLM(config)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model, tokenizer
