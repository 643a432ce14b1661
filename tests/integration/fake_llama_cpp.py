"""A stand-in llama_cpp package for the llama.cpp engine's child process: no model, no compiled llama.cpp.

install(folder, answer, vocab) writes folder/llama_cpp/__init__.py; a test puts `folder` first on the child's
PYTHONPATH (monkeypatch.setenv), so the engine's real child process (inference/llama_cpp_worker.py) imports it
instead of llama-cpp-python. Its Llama answers `answer` (token ids) greedily after any prompt: the logits are one-hot
at the next answer token. FAKE_LLAMA_CRASH in the child's environment makes it fail on purpose:

    load       SIGSEGV while the model loads (a build whose kernels do not run on this CPU)
    eval:N     SIGSEGV on the N-th eval of the process, once (a marker file beside the package remembers it)
    import     the package raises ImportError (llama-cpp-python missing or broken)
"""

from __future__ import annotations

from pathlib import Path

SOURCE = '''
import ctypes, os, signal
import numpy as np

HERE = os.path.dirname(__file__)
CRASH = os.environ.get("FAKE_LLAMA_CRASH", "")
if CRASH == "import":
    raise ImportError("libllama.so: cannot open shared object file (a stand-in)")
ANSWER = [{answer}]
VOCAB = {vocab}


def llama_print_system_info():
    return b"CPU : FAKE = 1"


def llama_get_logits_ith(ctx, i):
    return ctx


class Llama:
    def __init__(self, model_path, n_ctx=512, **kwargs):
        if CRASH == "load":
            os.kill(os.getpid(), signal.SIGSEGV)
        if not os.path.exists(model_path):
            raise ValueError(f"Failed to load model from file: {{model_path}}")
        self._n_ctx, self.evals, self.position = n_ctx, 0, 0
        self.logits = np.zeros(VOCAB, dtype=np.float32)
        self.ctx = self.logits.ctypes.data_as(ctypes.POINTER(ctypes.c_float))

    def n_vocab(self):
        return VOCAB

    def n_ctx(self):
        return self._n_ctx

    def reset(self):
        self.position = 0

    def eval(self, tokens):
        self.evals += 1
        marker = os.path.join(HERE, "crashed")
        if CRASH == f"eval:{{self.evals}}" and not os.path.exists(marker):
            open(marker, "w").close()
            os.kill(os.getpid(), signal.SIGSEGV)
        self.logits[:] = 0.0
        self.logits[ANSWER[min(self.position, len(ANSWER) - 1)]] = 10.0
        self.position += 1
'''


def install(folder: Path, answer: list[int], vocab: int) -> Path:
    """folder/llama_cpp/__init__.py answering `answer`; returns `folder` (for PYTHONPATH)."""
    package = Path(folder) / "llama_cpp"
    package.mkdir(parents=True, exist_ok=True)
    (package / "__init__.py").write_text(SOURCE.format(answer=", ".join(map(str, answer)), vocab=vocab))
    return Path(folder)
