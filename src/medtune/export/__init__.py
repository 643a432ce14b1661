"""Shipping a run: a merged model, MLX adapters, GGUF files for llama.cpp and Ollama, and the Hub's model card.

    merge.py          the adapter fused into its base: a plain transformers folder, checked against base + adapter
    mlx.py            LoRA adapters between PEFT and mlx-lm, both ways (`medtune export --to mlx | --from mlx`)
    gguf.py           `medtune export --to gguf`: merge, convert, quantize, write a Modelfile, check the file
    llama_cpp.py      llama.cpp's converter (found or fetched) and its quantizer (through llama-cpp-python)
    llama_cpp_run.py  the check's run of a GGUF file in llama.cpp, in a child process
    modelfile.py      the Ollama Modelfile: the chat template as a Go template, system prompt, stop tokens
    hub_card.py       the model card `medtune push` uploads (the upload itself is in medtune.commands.push)
    atomic.py         output folders written in `.NAME.partial`, checked, then renamed; stale partials removed
"""
