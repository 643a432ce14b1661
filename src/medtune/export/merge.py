"""Fuse a LoRA adapter into its base model: a plain transformers folder (sharded safetensors, tokenizer with its chat
template, a generation config that stops where the run stops, the run's config.yaml and a model card), then check
that the merged model gives the logits and greedy tokens of base + adapter.

PEFT's merge_and_unload does the arithmetic; this module decides what the folder must hold for every tool that
opens it (transformers, vLLM, lm-eval, medtune itself). A QLoRA run merges into the base loaded unquantized (NF4
weights cannot hold the sum), and says so. The folder is written and checked as `.OUT.partial` and renamed to OUT
with its medtune_merge.json only once the check passed (export/atomic.py): no OUT is ever unchecked.
"""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.export.atomic import check_out, partial_of, writing
from medtune.inference import weights
from medtune.rundir import CONFIG_FILE

INFO_FILE = weights.MERGE_INFO  # written last, once the check passed: what readers take for a finished merge
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


def merge(source: weights.Source, out: Path, dtype: str = "auto") -> Merged:
    """Write the merged model of `source` (a base + adapter) to `out`, then check it against base + adapter."""
    if source.adapter is None:
        raise MedtuneError("nothing to merge: give --run DIR (with an adapter) or --model M --adapter A")
    check_out(out)
    notes = []
    if source.config.method == "qlora":
        notes.append("QLoRA run: the adapter is merged into the base loaded unquantized (float weights), since "
                     "4-bit weights cannot hold the sum")
    # merged in float32 whatever the target: the sum of a bf16 base and a small delta would round the delta away
    cfg = dataclasses.replace(source.config, model=dataclasses.replace(source.config.model, dtype="float32"))
    tokenizer, peft_model = weights.load_weights(dataclasses.replace(source, config=cfg), "cpu", merge_adapter=False)
    reference = _probe(peft_model, tokenizer)
    model = peft_model.merge_and_unload()
    if dtype not in ("auto", "float32"):
        import torch

        model = model.to(getattr(torch, dtype))
    # written and checked in .OUT.partial, renamed to OUT only then: a kill never leaves an unchecked OUT/
    with writing(out, "merge", keep_on=(MergeMismatch,)) as partial:
        _write(model, tokenizer, source, partial, notes)
        result = _check(partial, out, reference, tokenizer, str(model.dtype).removeprefix("torch."), notes)
        (partial / INFO_FILE).write_text(json.dumps({**dataclasses.asdict(result), "out": str(out),
                                                     "base": source.config.model.name,
                                                     "adapter": str(source.adapter)}, indent=2) + "\n",
                                         encoding="utf-8")
    return result


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
