"""The GGUF file the llama.cpp engine runs: a file the model names itself, else `export --to gguf` run once into a
cache and reused while the weights stay the same.

    model_file(source)  -> GgufModel(file, quant, origin)
      smollm2-135m-instruct, ./model.Q4_K_M.gguf   the file as it is (no adapter)
      runs/quickstart (base + adapter)             runs/quickstart/gguf/f16-<key>/quickstart.F16.gguf
      any other model (a folder, a hub id)         ~/.cache/medtune/gguf-engine/<name>/f16-<key>/<name>.F16.gguf

The quantization is the config's generation.gguf_quant (f16 by default: the closest to the default engine). The
key is a sha256 of what the file is made from: the adapter's files (their contents), the base model's name and
revision, and for a model without an adapter its weight files' names, sizes and modification times (hashing a
whole model would take longer than it saves). Retraining changes the adapter, so the key; the next load converts
again, says why, and removes the folder of the old key once the new one is whole. A folder is written by
export.gguf.export, so whole or not at all (export/atomic.py's `writing`: `.NAME.partial`, checked, renamed), and
a lock file keeps two processes from converting the same key at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from medtune.errors import MedtuneError, first_line
from medtune.export.gguf import INFO_FILE
from medtune.inference import weights
from medtune.inference.llama_cpp_engine import GgufModel, given_file
from medtune.rundir import ADAPTER_FILE, RunDir

CACHE_DIR = "gguf"  # <run>/gguf/
DEFAULT_CACHE = Path("~/.cache/medtune/gguf-engine")  # models that are not part of a run
HUB_FILES = ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken", "*.py"]  # what the converter reads


def model_file(source: weights.Source) -> GgufModel:
    """The GGUF file for `source` at generation.gguf_quant, converted (once per key) when the model is not one."""
    found = given_file(source)
    if found is not None:
        return found
    quant = source.config.generation.gguf_quant
    source = _local(source)
    root = cache_root(source)
    key = source_key(source, quant)
    folder = root / f"{quant}-{key[:16]}"
    with _locked(root, folder.name):
        done = _finished(folder)
        if done is None:
            older = sorted(p for p in root.glob(f"{quant}-*") if p.is_dir() and p != folder)
            done = _convert(source, folder, quant, older)
    return GgufModel(done, quant, "export --to gguf's conversion, cached")


def cache_root(source: weights.Source) -> Path:
    """<run>/gguf/ for a run's adapter or full model, else a folder of the user's cache named after the model."""
    weights_dir = source.adapter or Path(source.config.model.name)
    for folder in (weights_dir.parent, weights_dir.parent.parent):  # adapter/, model/, checkpoints/checkpoint-N/
        if RunDir(folder).is_run():
            return folder / CACHE_DIR
    slug = "".join(c if c.isalnum() or c in "-_." else "-" for c in source.name).strip("-.") or "model"
    return DEFAULT_CACHE.expanduser() / slug


def source_key(source: weights.Source, quant: str) -> str:
    """sha256 of what the converted file is made from (see the module's help)."""
    digest = hashlib.sha256()
    model = source.config.model
    digest.update(json.dumps([quant, model.name if source.adapter else "", model.revision]).encode())
    if source.adapter is not None:
        for path in sorted(Path(source.adapter).iterdir()):
            if path.is_file() and (path.name == ADAPTER_FILE or path.name.startswith("adapter_model")):
                digest.update(path.name.encode())
                with path.open("rb") as f:
                    for block in iter(lambda: f.read(1 << 20), b""):
                        digest.update(block)
    else:
        folder = Path(model.name)
        for path in sorted(folder.iterdir()):
            if path.is_file() and path.suffix in (".safetensors", ".bin", ".json"):
                stat = path.stat()
                digest.update(f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return digest.hexdigest()


def _local(source: weights.Source) -> weights.Source:
    """Without an adapter, export converts a local folder: a hub id is downloaded first (the files transformers
    would download to run it); with one, the merge loads the base itself."""
    name = source.config.model.name
    if source.adapter is not None or Path(name).expanduser().is_dir():
        return source
    from huggingface_hub import snapshot_download

    try:
        folder = snapshot_download(name, revision=source.config.model.revision, allow_patterns=HUB_FILES)
    except Exception as error:  # noqa: BLE001 - offline, not found, gated: one line, whatever the hub said
        raise MedtuneError(f"{name}: cannot download it to convert for llama.cpp ({first_line(error)})") from None
    return replace(source, config=replace(source.config, model=replace(source.config.model, name=folder)))


def _finished(folder: Path) -> Path | None:
    """The GGUF file of a whole cache folder (export writes its info file last, inside the partial folder)."""
    if not (folder / INFO_FILE).is_file():
        return None
    files = sorted(folder.glob("*.gguf"))
    return files[0] if len(files) == 1 else None


def _convert(source: weights.Source, folder: Path, quant: str, older: list[Path]) -> Path:
    from medtune.export.gguf import export

    why = ("the weights changed since the last conversion (" + ", ".join(p.name for p in older) + ")" if older
           else "first use")
    say(f"converting {source.name} into a GGUF file ({quant}) for llama.cpp ({why}): merge, convert and check, "
        f"once (seconds for a small model, minutes for a large one) into {folder}")
    if folder.exists():  # a folder without its info file is not one export wrote: it cannot be trusted
        shutil.rmtree(folder)
    result = export(source, folder, quant)
    agreement = (f"argmax as the merged model at {result.argmax_agreement:.0%} of positions, same greedy tokens "
                 f"{'yes' if result.same_greedy_tokens else 'no'}")
    say(f"converted in {result.seconds:.0f}s: {result.file} ({result.size_mb:.0f} MB; checked in {result.runtime}: "
        f"{agreement})")
    for old in older:
        shutil.rmtree(old, ignore_errors=True)
    return result.file


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    """One converting process per key: a second waits, then finds the folder whole."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise MedtuneError(f"cannot write the GGUF cache in {root} ({error.strerror or error})") from None
    try:
        import fcntl
    except ImportError:  # Windows: no lock
        yield
        return
    with open(root / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def say(line: str) -> None:
    print(f"medtune: {line}", file=sys.stderr, flush=True)
