"""The llama.cpp engine's model lives in a child process (inference/llama_cpp_worker.py); this is the parent's side.

Why a child and not llama.cpp inside medtune's own process: llama.cpp's kernels can crash the process that runs
them (a native llama-cpp-python build used AMX on a virtual machine whose CPU reports it, and died with SIGSEGV;
export --to gguf runs its check in a child for that reason, export/llama_cpp_run.py). In-process, that crash ends
`medtune serve` for every client; in a child it is one line: a crash at load makes the engine unusable
(LlamaCppFailed, which `--engine auto` answers by falling back to transformers), a crash mid-answer fails the
requests in flight (the server answers them 500 with that line) and the next request starts a new child. The cost
is one pipe round trip per token (tens of microseconds, against milliseconds per token) and a second Python
process (numpy and llama_cpp only; the weights live there, not in medtune's process).
"""

from __future__ import annotations

import pickle
import signal
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medtune.errors import MedtuneError
from medtune.inference.llama_cpp_sampling import Sampling

WORKER = "medtune.inference.llama_cpp_worker"
PORTABLE_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"'


class LlamaCppFailed(MedtuneError):
    """llama.cpp could not load or run the file: the child refused it, or died (the message names the signal and
    the log)."""


@dataclass(frozen=True)
class Info:
    """What the child reports once the model is loaded."""

    n_vocab: int
    n_ctx: int
    peak_mb: float  # the child's peak resident memory after loading
    system: str  # llama.cpp's system info line: the CPU features its build uses


class LlamaProcess:
    """One child process holding one GGUF model; not thread-safe (the engine holds a lock around each call)."""

    def __init__(self, file: Path, n_ctx: int, n_threads: int, command: list[str] | None = None):
        self.file, self.n_ctx, self.n_threads = Path(file), n_ctx, n_threads
        # the child's command line; tests hand a stand-in (a missing package, a crash) through it
        self.command = command or [sys.executable, "-X", "faulthandler", "-m", WORKER]
        self.log: Path | None = None
        self._proc: subprocess.Popen | None = None
        self._ending: weakref.finalize | None = None
        self.info: Info | None = None

    # ------------------------------------------------------------ lifetime

    def start(self) -> Info:
        """Start the child and load the model; LlamaCppFailed (one line) when it cannot."""
        self.close()
        handle, name = tempfile.mkstemp(prefix="medtune-llama.cpp-", suffix=".log")
        self.log = Path(name)
        with open(handle, "wb") as sink:  # the child writes into its own copy of the descriptor
            self._proc = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=sink)
        # the child ends when this object goes (an evaluation's next system needs its memory) or this process does
        self._ending = weakref.finalize(self, _end, self._proc, self.log, False)
        self._send({"file": str(self.file), "n_ctx": self.n_ctx, "n_threads": self.n_threads}, "loading")
        reply = self._receive("loading")
        if reply[0] != "ready":
            _end(self._forget(), None, False)  # it exits by itself; its log stays, named in the message
            raise LlamaCppFailed(f"{self.file.name}: llama.cpp cannot load it ({reply[1] or 'see ' + str(self.log)})")
        self.info = Info(**reply[1])
        return self.info

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def close(self) -> None:
        """End the child (it exits when its input closes); its log is removed unless it failed."""
        if self._proc is not None:
            _end(self._forget(), self.log, False)

    def kill(self) -> None:
        """End the child now (it is mid-answer)."""
        if self._proc is not None:
            _end(self._forget(), self.log, True)

    def _forget(self) -> subprocess.Popen:
        """The child, no longer this object's (its finalizer detached)."""
        proc, self._proc = self._proc, None
        if self._ending is not None:
            self._ending.detach()
        return proc

    # ------------------------------------------------------------ calls

    def generate(self, prompt_ids: list[int], sampling: Sampling, max_tokens: int, stop_ids: set[int],
                 on_token: Callable[[int], bool]) -> float:
        """Generate; on_token(id) is called for each token and returns True to stop. Returns the child's peak
        resident memory in MB."""
        self._send(("generate", list(prompt_ids), sampling, max_tokens, set(stop_ids)), "generating")
        try:
            while True:
                reply = self._receive("generating")
                if reply[0] == "done":
                    return reply[1]
                self._send("stop" if on_token(reply[1]) else "more", "generating")
        except LlamaCppFailed:
            raise
        except BaseException:
            self.kill()  # on_token failed, or Ctrl-C: the child is mid-answer, so it goes; the next call starts anew
            raise

    def score(self, inputs: list[tuple[list[int], int]]) -> tuple[list, float]:
        """(per input, the log-softmax rows of its last `tail` positions; the child's peak memory in MB)."""
        self._send(("score", [(list(ids), tail) for ids, tail in inputs]), "scoring")
        try:
            reply = self._receive("scoring")
        except LlamaCppFailed:
            raise
        except BaseException:
            self.kill()  # Ctrl-C: its answer would be read as the next call's
            raise
        return reply[1], reply[2]

    # ------------------------------------------------------------ the pipe

    def _send(self, message, doing: str) -> None:
        try:
            pickle.dump(message, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, AttributeError):
            raise self._died(doing) from None

    def _receive(self, doing: str):
        try:
            return pickle.load(self._proc.stdout)
        except (EOFError, pickle.UnpicklingError, OSError, AttributeError):
            raise self._died(doing) from None

    def _died(self, doing: str) -> LlamaCppFailed:
        code = None
        if self._proc is not None:
            proc = self._forget()
            try:
                code = proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
            _end(proc, None, True)  # its pipes; the log stays, for the message to name
        return LlamaCppFailed(failure(self.file, code, doing, self.log))


def _end(proc: subprocess.Popen, log: Path | None, kill: bool) -> None:
    """Close the child's input (it exits when its input closes) or kill it, wait, close its pipes; remove its log
    when it ended well."""
    try:
        if kill:
            proc.kill()
        else:
            proc.stdin.close()
        proc.wait(timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        try:
            pipe.close()
        except OSError:  # unsent bytes to a dead process
            pass
    if proc.returncode == 0 and log is not None:
        log.unlink(missing_ok=True)


def failure(file: Path, code: int | None, doing: str, log: Path | None) -> str:
    """One line: which signal (or exit code) ended llama.cpp while `doing` what, where its output is, what to try."""
    where = f"its output: {log}" if log else "no log"
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return (f"{file.name}: llama.cpp crashed ({name}) while {doing} ({where}); a llama-cpp-python build whose "
                f"kernels do not run on this CPU (native builds use AMX where the CPU reports it) can do this: "
                f"reinstall it with {PORTABLE_BUILD} pip install --force-reinstall --no-cache-dir llama-cpp-python, "
                "or use --engine transformers")
    ended = f"exit code {code}" if code is not None else "no exit code"
    return f"{file.name}: llama.cpp's process ended ({ended}) while {doing} ({where}); or use --engine transformers"
