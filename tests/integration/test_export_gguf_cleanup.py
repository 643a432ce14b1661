"""`medtune export --to gguf` fails whole: whichever step fails after the work folder is made (the converter
refusing the tokenizer's pre-tokenizer after the merge, a file no runtime can open, llama.cpp crashing in the
check), nothing half-written is left beside --out, and a converter failure or a crash still names its log. The
converter here is a stand-in llama.cpp checkout (--llama-cpp): a script that fails as llama.cpp's does, or writes a
file that is no GGUF; llama.cpp, where it must crash or refuse, a stand-in llama_cpp package on the check's path."""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path

import pytest
from inference_helpers import make_run

from medtune.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_thread")]

PRE_TOKENIZER = """import sys
print("WARNING:hf-to-gguf:** WARNING: The BPE pre-tokenizer was not recognized!")
print("NotImplementedError: BPE pre-tokenizer was not recognized - update get_vocab_base_pre()")
sys.exit(1)
"""
NOT_GGUF = """import sys
open(sys.argv[sys.argv.index("--outfile") + 1], "wb").write(b"not a gguf file")
"""
CRASHING_LLAMA_CPP = """import os, signal
class Llama:
    def __init__(self, model_path, **kwargs):
        pass
    def tokenize(self, text, add_bos, special):
        return [1]
    def eval(self, ids):  # as a build whose kernels do not run on this CPU (llama.cpp's AMX matmul did)
        os.kill(os.getpid(), signal.SIGSEGV)
"""
FAILING_LLAMA_CPP = """class Llama:
    def __init__(self, model_path, **kwargs):
        pass
    def tokenize(self, text, add_bos, special):
        raise RuntimeError("tokenizer vocabulary mismatch")
"""
REFUSING_LLAMA_CPP = """import sys
class Llama:
    def __init__(self, model_path, **kwargs):
        print("llama_model_load: error loading model: missing tensor 'output_norm.weight'", file=sys.stderr)
        raise ValueError(f"Failed to load model from file: {model_path}")
"""


def checkout(folder: Path, script: str) -> Path:
    folder.mkdir()
    (folder / "convert_hf_to_gguf.py").write_text(script)
    return folder


def export(run: Path, out: Path, converter: Path, capsys) -> str:
    code = main(["export", "--run", str(run), "--to", "gguf", "--out", str(out), "--llama-cpp", str(converter)])
    err = capsys.readouterr().err
    assert code == 2, err
    return err


def left_behind(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir() if p.name.endswith(".partial") or p.name == "out")


def test_a_pre_tokenizer_refused_after_the_merge_leaves_no_partial_folder(tiny_llama, tmp_path, capsys):
    run = make_run(tiny_llama, tmp_path / "run")
    err = export(run, tmp_path / "out", checkout(tmp_path / "llama.cpp", PRE_TOKENIZER), capsys)
    assert "does not know this tokenizer's pre-tokenizer" in err  # failed at the converter, after the merge
    assert left_behind(tmp_path) == []
    log = Path(re.search(r"its output: (\S+convert\.log)\)", err).group(1))
    assert "pre-tokenizer was not recognized" in log.read_text()  # the log it names is still there
    shutil.rmtree(log.parent)  # kept for the user (in the system's temporary folder); not by a test


def test_a_file_the_check_cannot_open_leaves_no_partial_folder(tiny_llama, tmp_path, capsys, monkeypatch):
    run = make_run(tiny_llama, tmp_path / "run")
    monkeypatch.setitem(sys.modules, "llama_cpp", None)  # the check in transformers' GGUF loader, as without it
    (tmp_path / "out").mkdir()  # an empty --out is allowed, and stays as it was
    err = export(run, tmp_path / "out", checkout(tmp_path / "llama.cpp", NOT_GGUF), capsys)
    assert "GGUF loader cannot open the file the converter wrote" in err and ".partial" not in err
    assert left_behind(tmp_path) == ["out"] and not any((tmp_path / "out").iterdir())


def stand_in_llama_cpp(folder: Path, source: str, monkeypatch) -> None:
    """A llama_cpp package the check's child process imports before the real one (PYTHONPATH comes first)."""
    (folder / "llama_cpp").mkdir(parents=True)
    (folder / "llama_cpp" / "__init__.py").write_text(source)
    monkeypatch.setenv("PYTHONPATH", str(folder))


def test_llama_cpp_crashing_in_the_check_is_one_line_and_leaves_no_partial_folder(tiny_llama, tmp_path, capsys,
                                                                                   monkeypatch):
    run = make_run(tiny_llama, tmp_path / "run")
    stand_in_llama_cpp(tmp_path / "site", CRASHING_LLAMA_CPP, monkeypatch)
    err = export(run, tmp_path / "out", checkout(tmp_path / "llama.cpp", NOT_GGUF), capsys)
    assert "llama.cpp crashed (SIGSEGV) running the file" in err and "GGML_NATIVE=OFF" in err  # medtune lived on
    assert left_behind(tmp_path) == [] and len(err.strip().splitlines()) == 1
    log = Path(re.search(r"its output: (\S+check\.log)\)", err).group(1))
    assert log.is_file()  # named, so kept
    shutil.rmtree(log.parent)


def test_llama_cpp_refusing_the_file_names_its_reason(tiny_llama, tmp_path, capsys, monkeypatch):
    run = make_run(tiny_llama, tmp_path / "run")
    stand_in_llama_cpp(tmp_path / "site", REFUSING_LLAMA_CPP, monkeypatch)
    err = export(run, tmp_path / "out", checkout(tmp_path / "llama.cpp", NOT_GGUF), capsys)
    assert "llama.cpp cannot load the file it converted (llama_model_load: error loading model: missing tensor" in err
    assert left_behind(tmp_path) == []


def test_any_other_failure_of_the_check_names_its_exit_code_and_keeps_the_log(tiny_llama, tmp_path, capsys,
                                                                              monkeypatch):
    run = make_run(tiny_llama, tmp_path / "run")
    stand_in_llama_cpp(tmp_path / "site", FAILING_LLAMA_CPP, monkeypatch)
    err = export(run, tmp_path / "out", checkout(tmp_path / "llama.cpp", NOT_GGUF), capsys)
    assert "llama.cpp's check failed (exit code 1;" in err and left_behind(tmp_path) == []
    log = Path(re.search(r"its output: (\S+check\.log)\)", err).group(1))
    assert "RuntimeError: tokenizer vocabulary mismatch" in log.read_text()  # the child's traceback, kept
    shutil.rmtree(log.parent)
