"""The export check's run of a GGUF file in llama.cpp (llama-cpp-python), in a child process.

A child, because llama.cpp's kernels can crash the process that runs them: a native build of llama-cpp-python
(its default: -march=native) uses AMX where the CPU has it, and that matmul died with SIGSEGV on a virtual machine
whose CPU reports AMX. In-process, that ends medtune mid-export; in a child it is an error that says so, the work
folder is cleaned up, and the log is kept.

    python -m medtune.export.llama_cpp_run REQUEST.json ANSWER.npz   # what run() starts
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from medtune.errors import MedtuneError

LOAD_FAILED = 3  # the child's exit code when llama.cpp refuses the file (its reason is in the log)
PORTABLE_BUILD = 'CMAKE_ARGS="-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"'


def run(file: Path, text: str, ids: list[int], stops: set[int], greedy_tokens: int, log: Path):
    """(llama.cpp's token ids for `text`, its logits at each position of `ids`, its greedy continuation of `ids`);
    llama.cpp's own output goes to `log`."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="medtune-llama-cpp-") as tmp:
        request, answer = Path(tmp) / "request.json", Path(tmp) / "answer.npz"
        request.write_text(json.dumps({"file": str(file), "text": text, "ids": ids, "stops": sorted(stops),
                                       "greedy_tokens": greedy_tokens}), encoding="utf-8")
        command = [sys.executable, "-X", "faulthandler", "-m", __name__, str(request), str(answer)]  # a crash: where
        with log.open("a", encoding="utf-8") as sink:
            done = subprocess.run(command, stdout=sink, stderr=subprocess.STDOUT)
        if done.returncode:
            raise MedtuneError(_failure(file, done.returncode, log))
        with np.load(answer) as got:
            return got["ids"].tolist(), got["logits"], got["greedy"].tolist()


def _failure(file: Path, code: int, log: Path) -> str:
    """One line: llama.cpp refused the file (its reason), or crashed running it (which signal, what to try)."""
    if code == LOAD_FAILED:
        lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
        reason = next((line for line in lines if "error" in line.lower()), "see its log")
        return (f"{file.name}: llama.cpp cannot load the file it converted ({reason.strip()}; --no-check keeps the "
                "file, to inspect it)")
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else f"signal {-code}"
        return (f"{file.name}: llama.cpp crashed ({name}) running the file (its output: {log}); a broken file, or "
                "a llama-cpp-python build whose kernels do not run on this machine (native builds use AMX where "
                f"the CPU reports it): reinstall it with {PORTABLE_BUILD} pip install --force-reinstall "
                "--no-cache-dir llama-cpp-python, or --no-check keeps the file unchecked")
    return f"{file.name}: llama.cpp's check failed (exit code {code}; its output: {log})"


def _probe(request: dict):
    import numpy as np
    from llama_cpp import Llama

    ids = request["ids"]
    try:
        llm = Llama(model_path=request["file"], n_ctx=len(ids) + request["greedy_tokens"] + 8, logits_all=True,
                    verbose=False)
    except ValueError as error:  # llama-cpp-python's "Failed to load model": llama.cpp said why on stderr
        print(f"error: {error}", file=sys.stderr)
        raise SystemExit(LOAD_FAILED) from None
    got_ids = llm.tokenize(request["text"].encode("utf-8"), add_bos=False, special=True)
    llm.eval(ids)
    logits = np.array(llm.scores[: len(ids)], dtype=np.float32)
    greedy = []
    for token in llm.generate(ids, top_k=1, top_p=1.0, temp=0.0, repeat_penalty=1.0, reset=True):
        greedy.append(int(token))
        if token in request["stops"] or len(greedy) == request["greedy_tokens"]:
            break
    return np.array(got_ids, dtype=np.int64), logits, np.array(greedy, dtype=np.int64)


def main(argv: list[str] | None = None) -> None:
    import numpy as np

    request, answer = argv or sys.argv[1:]
    ids, logits, greedy = _probe(json.loads(Path(request).read_text(encoding="utf-8")))
    np.savez(answer, ids=ids, logits=logits, greedy=greedy)


if __name__ == "__main__":
    main()
