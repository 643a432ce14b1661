"""`export --to gguf`: base + adapter -> merged folder -> llama.cpp's converter -> (llama.cpp's quantizer) -> a
GGUF file, an Ollama Modelfile, and a check of the file by a runtime that is not medtune.

The check runs the file in llama.cpp (llama-cpp-python) when it is installed, else in transformers' GGUF loader,
and compares it with the merged model in float32 on a chat prompt: the same token ids, the next-token argmax at
every position, the greedy continuation. A float file (f32, f16, bf16) whose argmax agrees at fewer than
MIN_AGREEMENT of the positions is refused (a broken conversion agrees almost nowhere); quantized files are
measured and reported, not refused.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from medtune.errors import MedtuneError, first_line
from medtune.export import llama_cpp, llama_cpp_run, modelfile
from medtune.export.atomic import check_out, writing
from medtune.export.merge import MergeMismatch, merge
from medtune.inference import weights

QUANTS = (*llama_cpp.CONVERTER_TYPES, *llama_cpp.QUANTIZER_TYPES)
MIN_AGREEMENT = 0.9
CHECK_QUESTION = "A 45-year-old man has crushing chest pain radiating to the left arm. What is the first step?"
GREEDY_TOKENS = 16
INFO_FILE = "medtune_export.json"
MAX_CONTEXT = 8192  # Ollama's num_ctx: the model's own context, capped (its KV cache is allocated whole)


@dataclass
class Exported:
    file: Path
    quant: str
    runtime: str  # what opened the file for the check
    same_token_ids: bool
    argmax_agreement: float  # share of prompt positions whose next-token argmax matches the merged model's
    max_logit_diff: float
    same_greedy_tokens: bool
    size_mb: float
    seconds: float
    notes: list = field(default_factory=list)


def export(source: weights.Source, out: Path, quant: str = "f16", llama_cpp_dir: str | None = None,
           check: bool = True) -> Exported:
    start = time.perf_counter()
    quant = quant.lower()
    if quant not in QUANTS:
        raise MedtuneError(f"--quant {quant}: not a GGUF type medtune writes; use one of {', '.join(QUANTS)}")
    check_out(out)
    converter = llama_cpp.find(llama_cpp_dir)
    _check_architecture(source, converter)
    # built and checked in .OUT.partial, renamed to OUT last; a failure or Ctrl-C removes it, a kill leaves it
    # for the next export to OUT to remove
    with writing(out, "export") as partial:
        logs = Path(tempfile.mkdtemp(prefix=f"medtune-gguf-{out.name}-"))  # outside partial: a failure may name them
        try:
            result, name = _build(source, partial, converter, quant, check, logs)
        except BaseException as error:
            if str(logs) not in str(error):  # converter and quantizer failures point at their log: keep that one
                shutil.rmtree(logs, ignore_errors=True)
            raise
        for log in logs.iterdir():
            shutil.move(log, partial / log.name)
        logs.rmdir()
        result.file = out / name
        result.notes = [f"converted by {converter.origin}", *result.notes]
        result.seconds = round(time.perf_counter() - start, 1)
        (partial / INFO_FILE).write_text(json.dumps({**asdict(result), "file": str(result.file),
                                                     "base": source.config.model.name,
                                                     "adapter": str(source.adapter) if source.adapter else None},
                                                    indent=2) + "\n", encoding="utf-8")
    return result


def _build(source: weights.Source, partial: Path, converter, quant: str, check: bool,
           logs: Path) -> tuple[Exported, str]:
    """Merge, convert (and quantize), check, and write the Modelfile, all into `partial`; logs into `logs`."""
    with tempfile.TemporaryDirectory(dir=partial) as work:
        folder, notes = _model_folder(source, Path(work) / "merged")
        name = f"{source.name}.{quant.upper()}.gguf"
        _write_gguf(converter, folder, partial / name, quant, Path(work), logs / "convert.log")
        result = (_check(partial / name, folder, source, quant, logs / "check.log") if check
                  else _unchecked(partial / name, quant))
        _write_modelfile(partial, name, folder, source)
    result.notes = [*notes, *result.notes]
    return result, name


def _check_architecture(source: weights.Source, converter: llama_cpp.Converter) -> None:
    """Fail before any merge: the converter supports a list of architectures, readable from its source."""
    from medtune.models.load import load_model_config

    archs = getattr(load_model_config(source.config.model), "architectures", None) or ["(none in config.json)"]
    known = llama_cpp.architectures(converter)
    missing = [a for a in archs if known is not None and a not in known]
    if missing:
        raise MedtuneError(f"GGUF export: llama.cpp's converter does not support {', '.join(missing)} "
                           f"({source.config.model.name}); it converts {len(known)} architectures, such as "
                           "LlamaForCausalLM, MistralForCausalLM, Phi3ForCausalLM, Qwen2ForCausalLM")


def _model_folder(source: weights.Source, merged: Path) -> tuple[Path, list]:
    """A transformers folder of the model to convert: the merged model, or the base itself without an adapter."""
    if source.adapter is not None:
        try:
            result = merge(source, merged, "auto")
        except MergeMismatch as error:  # its folder sits inside this export's partial folder, removed with it
            raise MedtuneError(f"GGUF export: {error.reason}; nothing was written") from None
        kept = [n for n in result.notes if not n.startswith("checked in")]
        return merged, [f"merged in float32 (max |logit difference| {result.max_logit_diff:.1e} against base + "
                        "adapter)", *kept]
    from medtune.models.gguf import local_folder

    folder = Path(local_folder(source.config.model.name, source.config.model.gguf_cache))
    if not (folder / "config.json").is_file():
        raise MedtuneError(f"{source.config.model.name}: GGUF export reads a local model folder; download it "
                           "first, or give --run / --adapter")
    return folder, []


def _write_gguf(converter, folder: Path, target: Path, quant: str, work: Path, log: Path) -> None:
    if quant in llama_cpp.CONVERTER_TYPES:
        llama_cpp.convert(converter, folder, target, quant, log)
        return
    f16 = work / "model.F16.gguf"
    llama_cpp.convert(converter, folder, f16, "f16", log)
    llama_cpp.quantize(f16, target, quant, log.with_name("quantize.log"))  # its own log: convert.log stays whole


def _write_modelfile(out: Path, name: str, folder: Path, source: weights.Source) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    stops = sorted(_stop_ids(folder, tokenizer))
    context = json.loads((folder / "config.json").read_text()).get("max_position_embeddings")
    text = modelfile.modelfile(name, modelfile.pieces(tokenizer, source.config.data.template),
                               weights.default_system_prompt(source.config),
                               [tokenizer.convert_ids_to_tokens(i) for i in stops],
                               min(context or MAX_CONTEXT, MAX_CONTEXT))
    (out / "Modelfile").write_text(text, encoding="utf-8")


def _stop_ids(folder: Path, tokenizer) -> set[int]:
    """The merged folder's generation config holds every stop token of the run (medtune merge writes them)."""
    config = json.loads((folder / "generation_config.json").read_text()) if (
        folder / "generation_config.json").is_file() else {}
    eos = config.get("eos_token_id", tokenizer.eos_token_id)
    ids = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    return {i for i in ids if i is not None}


# ---------------------------------------------------------------- the check, by a runtime that is not medtune


def _check(file: Path, folder: Path, source: weights.Source, quant: str, log: Path) -> Exported:
    import numpy as np
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    ids = _prompt_ids(tokenizer, source)
    stops = _stop_ids(folder, tokenizer)
    reference = AutoModelForCausalLM.from_pretrained(folder, dtype="float32")
    want_logits, want_greedy = _transformers_probe(reference, ids, stops)
    del reference
    runtime, got_ids, got_logits, got_greedy = _runtime_probe(file, tokenizer, ids, stops, log)
    agreement = float((got_logits.argmax(-1) == want_logits.argmax(-1)).mean())
    exported = Exported(file, quant, runtime, got_ids == ids, round(agreement, 4),
                        round(float(np.abs(got_logits - want_logits).max()), 4), got_greedy == want_greedy,
                        round(file.stat().st_size / 2**20, 1), 0.0)
    if quant in ("f32", "f16", "bf16") and (agreement < MIN_AGREEMENT or not exported.same_token_ids):
        raise MedtuneError(f"{file.name}: {runtime} disagrees with the merged model (next-token argmax agrees at "
                           f"{agreement:.0%} of positions, same token ids: {exported.same_token_ids}): the "
                           "conversion is broken (--no-check keeps the file, to inspect it)")
    return exported


def _unchecked(file: Path, quant: str) -> Exported:
    return Exported(file, quant, "none (--no-check)", False, 0.0, 0.0, False,
                    round(file.stat().st_size / 2**20, 1), 0.0, ["not checked (--no-check)"])


def _prompt_ids(tokenizer, source: weights.Source) -> list[int]:
    from medtune.data.records import Message
    from medtune.data.templates import render_prompt

    system = weights.default_system_prompt(source.config)
    messages = ([Message("system", system)] if system else []) + [Message("user", CHECK_QUESTION)]
    text = render_prompt(messages, tokenizer, source.config.data.template)
    return tokenizer(text, add_special_tokens=True).input_ids


def _transformers_probe(model, ids: list[int], stops: set[int]):
    import torch

    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].float().numpy()
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=sorted(stops),
                             pad_token_id=sorted(stops)[0])[0, len(ids):].tolist()
    return logits, out


def _runtime_probe(file: Path, tokenizer, ids: list[int], stops: set[int], log: Path | None = None):
    """(runtime, its token ids for the prompt, its logits at each prompt position, its greedy continuation);
    llama.cpp's loader talks into `log` (default: check.log beside the file)."""
    import importlib.util

    if importlib.util.find_spec("llama_cpp") is None:  # the package (the runtime users have), not ours
        return _transformers_gguf_probe(file, tokenizer, ids, stops)
    return _llama_cpp_probe(file, tokenizer, ids, stops, log or file.with_name("check.log"))


def _llama_cpp_probe(file: Path, tokenizer, ids: list[int], stops: set[int], log: Path):
    text = tokenizer.decode(ids, skip_special_tokens=False)
    got_ids, logits, greedy = llama_cpp_run.run(file, text, ids, stops, GREEDY_TOKENS, log)
    return "llama.cpp (llama-cpp-python)", got_ids, logits, greedy


def _transformers_gguf_probe(file: Path, tokenizer, ids: list[int], stops: set[int]):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        own = AutoTokenizer.from_pretrained(file.parent, gguf_file=file.name)
        model = AutoModelForCausalLM.from_pretrained(file.parent, gguf_file=file.name, dtype="float32")
    except (ValueError, OSError) as error:  # "does not start with the GGUF magic bytes", a truncated file
        raise MedtuneError(f"{file.name}: transformers' GGUF loader cannot open the file the converter wrote "
                           f"({first_line(error).replace(str(file), file.name)}; --no-check keeps the file, to "
                           "inspect it)") from None
    text = tokenizer.decode(ids, skip_special_tokens=False)
    logits, greedy = _transformers_probe(model, ids, stops)
    return "transformers' GGUF loader", own(text, add_special_tokens=False).input_ids, logits, greedy
