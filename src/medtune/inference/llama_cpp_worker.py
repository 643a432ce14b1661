"""The llama.cpp engine's child process: one GGUF model in llama.cpp (llama-cpp-python), driven over its standard
input and output by inference/llama_cpp_process.py.

    python -X faulthandler -m medtune.inference.llama_cpp_worker     # what LlamaProcess starts

Messages are pickled tuples (the parent started this process with this code: nothing else writes to its pipes):

    parent -> child                                    child -> parent
    {"file", "n_ctx", "n_threads"} (first)             ("ready", Info fields) | ("failed", reason), then exit 3
    ("generate", prompt_ids, Sampling, max_tokens,     ("token", id) for each token, each answered by the parent
     stop_ids)                                          with "more" or "stop"; then ("done", peak_rss_mb)
    ("score", [(ids, tail), ...])                      ("scored", [log-softmax rows (tail, n_vocab)], peak_rss_mb)

The prompt is medtune's own token ids, never text. Each token is chosen here from llama.cpp's logits by
inference/llama_cpp_sampling.py (transformers' rules), and llama.cpp starts computing the next position while the
parent does its bookkeeping for this one (stops, streaming, the safety layer's answer rules); a stop the parent
finds costs that one position. llama.cpp's own output (and a crash's traceback) goes to standard error, the
parent's log file; the protocol keeps the original standard output to itself.
"""

from __future__ import annotations

import os
import pickle
import signal
import sys

LOAD_FAILED = 3  # exit code after "failed": llama.cpp refused the file


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group: it stops medtune's current answer (chat keeps its
    # session), never the model; the parent ends this process by closing its input
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = os.fdopen(os.dup(1), "wb")  # the protocol's channel
    os.dup2(2, 1)  # anything printed (Python or C) lands in the log, never in the protocol
    sys.stdout = sys.stderr
    inp = sys.stdin.buffer

    def send(message) -> None:
        pickle.dump(message, out, protocol=pickle.HIGHEST_PROTOCOL)
        out.flush()

    spec = pickle.load(inp)
    try:
        llm = _load(spec)
    except (ImportError, OSError) as error:  # no llama-cpp-python here, or its library does not load
        print(f"error: {error}", file=sys.stderr, flush=True)
        send(("failed", f"llama-cpp-python does not import: {' '.join(str(error).split())}"))
        raise SystemExit(LOAD_FAILED) from None
    except (ValueError, RuntimeError) as error:  # llama-cpp-python's "Failed to load model": llama.cpp said why
        print(f"error: {error}", file=sys.stderr, flush=True)
        send(("failed", str(error)))
        raise SystemExit(LOAD_FAILED) from None
    send(("ready", {"n_vocab": llm.n_vocab(), "n_ctx": llm.n_ctx(), "peak_mb": peak_rss_mb(),
                    "system": _system_info()}))
    try:
        while True:
            message = pickle.load(inp)
            if message[0] == "generate":
                _generate(llm, *message[1:], send=send, receive=lambda: pickle.load(inp))
            elif message[0] == "score":
                send(("scored", _score(llm, message[1]), peak_rss_mb()))
    except (EOFError, BrokenPipeError):  # the parent closed the pipe (or died): nothing left to do
        return


def _load(spec: dict):
    from llama_cpp import Llama

    # n_gpu_layers=-1: a build with Metal (the default on a Mac) or CUDA runs every layer there; a CPU build
    # ignores it. logits_all stays off: only the newest position's logits are read.
    return Llama(model_path=spec["file"], n_ctx=spec["n_ctx"], n_threads=spec["n_threads"],
                 n_threads_batch=spec["n_threads"], n_gpu_layers=-1, verbose=False)


def _system_info() -> str:
    import llama_cpp

    return llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip()


def _last_logits(llm):
    """The newest position's logits (float32, n_vocab), copied out of llama.cpp's buffer."""
    import llama_cpp
    import numpy as np

    pointer = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(pointer, shape=(llm.n_vocab(),)).copy()


def _generate(llm, prompt_ids: list[int], sampling, max_tokens: int, stop_ids: set[int], *, send, receive) -> None:
    import numpy as np

    from medtune.inference.llama_cpp_sampling import choose

    seen = np.zeros(llm.n_vocab(), dtype=bool)
    seen[np.asarray(prompt_ids, dtype=np.int64)] = True  # transformers penalizes the prompt's tokens too
    rng = np.random.default_rng(sampling.seed)
    llm.reset()  # every prompt from its first token: an answer never depends on what ran before it
    llm.eval(prompt_ids)
    for count in range(1, max_tokens + 1):
        token = choose(_last_logits(llm), seen, sampling, rng)
        seen[token] = True
        send(("token", token))
        last = count == max_tokens or token in stop_ids
        if not last:
            llm.eval([token])  # computed while the parent looks at the token
        if receive() != "more" or last:
            break
    send(("done", peak_rss_mb()))


def _score(llm, inputs: list[tuple[list[int], int]]) -> list:
    """Per input, the log-softmax at its last `tail` positions (what log-likelihood scoring reads): the input up to
    the first of them in one pass, then one position at a time."""
    import numpy as np

    from medtune.inference.llama_cpp_sampling import log_softmax

    out = []
    for ids, tail in inputs:
        llm.reset()
        llm.eval(ids[: len(ids) - tail + 1])
        rows = [_last_logits(llm)]
        for token in ids[len(ids) - tail + 1:]:
            llm.eval([token])
            rows.append(_last_logits(llm))
        out.append(log_softmax(np.stack(rows)))
    return out


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM on Linux, where ru_maxrss would report the parent's memory at the
    fork when that was larger (exec carries the old mm's high-water mark over); ru_maxrss elsewhere (bytes on macOS);
    0.0 without either (Windows)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 2**10, 1)  # kB
    except OSError:
        pass
    try:
        import resource
    except ImportError:
        return 0.0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)


if __name__ == "__main__":
    main()
