"""Models: loading a base model, choosing what LoRA adapts, GGUF files as models, and small models built here.

    load.py    a base model and its tokenizer: dtype, device, attention kernel, RoPE scaling, 4-bit NF4 for QLoRA
    lora.py    which linear layers LoRA adapts, checked against the model; the PEFT config; trainable parameters
    gguf.py    any .gguf file (or the built-in smollm2-135m-instruct) converted once into a cached transformers folder
    tiny.py    a small random-weight model with a tokenizer trained on the spot (`medtune new-model`)
    warmup.py  the short next-token warm-up of `medtune new-model --pretrain-steps N`
"""
