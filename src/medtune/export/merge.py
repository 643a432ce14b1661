"""Fuse a LoRA adapter into its base model: a plain transformers folder (sharded safetensors, tokenizer with its chat
template, a generation config that stops where the run stops, the run's config.yaml and a model card), then check
that the merged model gives the logits and greedy tokens of base + adapter.

PEFT's merge_and_unload does the arithmetic; this module decides what the folder must hold for every tool that
opens it (transformers, vLLM, lm-eval, medtune itself). A QLoRA adapter learned against the base's NF4 weights as
they dequantize, not against the original 16-bit weights, so by default a QLoRA run merges into its base loaded in
4-bit and dequantized (the weights it trained against), and the check compares with that dequantized base +
adapter; `qlora_base="original"` merges into the original weights instead, and says so. The folder is
written and checked as `.OUT.partial` and renamed to OUT with its medtune_merge.json only once the check passed
(export/atomic.py): no OUT is ever unchecked. The merged copy is freed before the check reloads the folder, so the
merge peaks at one float32 copy of the model, not two.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.export.atomic import check_out, partial_of, writing
from medtune.inference import weights
from medtune.rundir import CONFIG_FILE

INFO_FILE = weights.MERGE_INFO  # written last, once the check passed: what readers take for a finished merge
QLORA_BASES = ("dequantized", "original")  # what a QLoRA adapter is merged into (see merge)
TOLERANCE = {"float32": 1e-4, "bfloat16": 5e-2, "float16": 1e-2}  # max |logit difference| accepted, per dtype
CHECK_TEXT = "A 45-year-old man has crushing chest pain radiating to the left arm. What is the first step?"
WRITES = (  # what merge() leaves in its folder, for a dry run to say before anything is merged
    "model.safetensors (float32 with dtype auto; above 2 GB, shards and model.safetensors.index.json)",
    "config.json and generation_config.json (stopping at the run's stop tokens)",
    "the tokenizer's files with the chat template training used (tokenizer.json, tokenizer_config.json, ...)",
    f"{CONFIG_FILE} (the run's resolved config) and {INFO_FILE} (the check against base + adapter)",
)


@dataclass
class Merged:
    out: Path
    dtype: str
    max_logit_diff: float
    same_greedy_tokens: bool
    notes: list
    qlora_base: str | None = None  # a QLoRA run: "dequantized" (its 4-bit base, dequantized) or "original"


def merge(source: weights.Source, out: Path, dtype: str = "auto", qlora_base: str = "dequantized") -> Merged:
    """Write the merged model of `source` (a base + adapter) to `out`, then check it against base + adapter.
    A QLoRA run (qlora_base, see the module's docstring) is merged into its dequantized 4-bit base by default."""
    if source.adapter is None:
        raise MedtuneError("nothing to merge: give --run DIR (with an adapter) or --model M --adapter A")
    if qlora_base not in QLORA_BASES:
        raise MedtuneError(f"qlora base {qlora_base!r} is not one of {', '.join(QLORA_BASES)}")
    check_out(out)
    qlora = weights.trained_in_4bit(source)
    dequantize = qlora and qlora_base == "dequantized"
    notes = [_qlora_note(qlora_base)] if qlora else []
    # merged in float32 whatever the target: the sum of a bf16 base and a small delta would round the delta away
    cfg = dataclasses.replace(source.config, model=dataclasses.replace(source.config.model, dtype="float32"))
    source32 = dataclasses.replace(source, config=cfg)
    tokenizer, peft_model = (_dequantized_with_adapter(source32) if dequantize else
                             weights.load_weights(source32, "cpu", merge_adapter=False, four_bit=False))
    reference = _probe(peft_model, tokenizer)
    model = peft_model.merge_and_unload()
    del peft_model
    if dtype not in ("auto", "float32"):
        import torch

        model = model.to(getattr(torch, dtype))
    merged_dtype = str(model.dtype).removeprefix("torch.")
    # written and checked in .OUT.partial, renamed to OUT only then: a kill never leaves an unchecked OUT/
    with writing(out, "merge", keep_on=(MergeMismatch,)) as partial:
        _write(model, tokenizer, source, partial, notes)
        del model  # the check reloads a second copy: the first goes before it (an 8B model is 32 GB in float32)
        gc.collect()
        result = _check(partial, out, reference, tokenizer, merged_dtype, notes)
        result.qlora_base = qlora_base if qlora else None
        (partial / INFO_FILE).write_text(json.dumps({**dataclasses.asdict(result), "out": str(out),
                                                     "base": source.config.model.name,
                                                     "adapter": str(source.adapter)}, indent=2) + "\n",
                                         encoding="utf-8")
    return result


def _qlora_note(qlora_base: str) -> str:
    if qlora_base == "dequantized":
        return ("QLoRA run: merged into its base loaded in 4-bit NF4 and dequantized to float32, the weights the "
                "adapter trained against; checked against that dequantized base + adapter")
    return ("QLoRA run: merged into the original (unquantized) base, as asked: not the model that trained (the "
            "adapter learned against the dequantized NF4 weights), and the check compares with this same original "
            "base + adapter, so it cannot see the difference")


def _dequantized_with_adapter(source: weights.Source):
    """(tokenizer, PeftModel): the base loaded in 4-bit NF4 as the run trained it, dequantized to float32 by
    transformers' own dequantize() (each NF4 layer back to nn.Linear: the weights bitsandbytes computes with when it
    trains), with the adapter on it, unmerged. Not PEFT's merge into the 4-bit layers: that quantizes the sum again.
    Dequantized before any forward pass: on CPUs with AVX512-BF16, bitsandbytes 0.50 repacks a 4-bit weight for
    inference at its first no-grad forward, and transformers' dequantize then misreads it."""
    import torch
    from peft import PeftModel

    tokenizer, base = weights.load_weights(dataclasses.replace(source, adapter=None), "cpu", merge_adapter=False,
                                           four_bit=True)
    base = base.dequantize(dtype=torch.float32)  # also drops its quantization_config
    return tokenizer, PeftModel.from_pretrained(base, str(source.adapter))


class MergeMismatch(MedtuneError):
    """The merged folder, reloaded, is not base + adapter: not renamed to OUT, kept as .OUT.partial to inspect."""

    def __init__(self, out: Path, reason: str):
        self.reason = reason
        super().__init__(f"{out}: {reason}; not written, but kept for inspection in {partial_of(out)} (the next "
                         f"merge to {out} removes it)")


def _write(model, tokenizer, source: weights.Source, folder: Path, notes: list) -> None:
    from medtune.inference.weights import eos_ids

    config = model.config
    if getattr(config, "quantization_config", None) is not None:  # lm-eval and plain from_pretrained refuse it
        del config.quantization_config
    stops = sorted(eos_ids(model, tokenizer))
    model.generation_config.eos_token_id = stops if len(stops) > 1 else stops[0]
    model.save_pretrained(folder, safe_serialization=True, max_shard_size="2GB")
    tokenizer.padding_side = "right"
    tokenizer.save_pretrained(folder)
    source.config.save(folder / CONFIG_FILE)  # its template and system prompt: medtune builds prompts as trained
    (folder / "README.md").write_text(_card(source, stops, tokenizer, notes), encoding="utf-8")


def _probe(model, tokenizer) -> dict:
    """Logits and 16 greedy tokens on a fixed medical prompt, from the model as it is now."""
    import torch

    ids = tokenizer(CHECK_TEXT, return_tensors="pt", add_special_tokens=False).input_ids
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits.float()
        greedy = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16,
                                do_sample=False, pad_token_id=tokenizer.pad_token_id)[0, ids.shape[1]:]
    return {"logits": logits, "greedy": greedy.tolist()}


def _check(folder: Path, out: Path, reference: dict, tokenizer, dtype: str, notes: list) -> Merged:
    """Reload the written folder (out's partial folder) with plain transformers and compare it with base + adapter."""
    from transformers import AutoModelForCausalLM

    start = time.perf_counter()
    merged = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")  # compared in the reference's precision
    got = _probe(merged, tokenizer)
    diff = float((got["logits"] - reference["logits"]).abs().max())
    same = got["greedy"] == reference["greedy"]
    limit = TOLERANCE.get(dtype, 1e-4)
    if diff > limit or (dtype == "float32" and not same):  # half precision may flip a near-tie: reported, not refused
        raise MergeMismatch(out, f"the merged model differs from base + adapter (max |logit difference| "
                                 f"{diff:.2e}, tolerance {limit:g} for {dtype}; same greedy tokens: {same})")
    notes.append(f"checked in {time.perf_counter() - start:.1f}s by reloading with plain from_pretrained")
    return Merged(out, dtype, diff, same, notes)


def _card(source: weights.Source, stops: list, tokenizer, notes: list) -> str:
    cfg = source.config
    stop_tokens = ", ".join(f"`{tokenizer.convert_ids_to_tokens(i)}`" for i in stops)
    lines = [
        f"# {source.name} (merged)", "",
        f"`{cfg.model.name}` with the LoRA adapter `{source.adapter}` fused into its weights by `medtune merge`.",
        "Educational and research use only: not a medical device, and no substitute for a clinician.", "",
        "## Use", "", "```python",
        "from transformers import AutoModelForCausalLM, AutoTokenizer",
        'model = AutoModelForCausalLM.from_pretrained("PATH")',
        'tokenizer = AutoTokenizer.from_pretrained("PATH")  # its chat template is the one training used',
        "```", "",
        f"Generation stops at {stop_tokens}. " + (f"System prompt used in training: \"{cfg.data.system_prompt}\"."
                                                 if cfg.data.system_prompt else "Trained without a system prompt."),
        "", *[f"- {n}" for n in notes], "",
    ]
    return "\n".join(lines)
