"""Generation handed to vLLM (`--engine vllm` of `medtune eval` and `medtune serve`), with medtune's prompts, stop
tokens, reasoning split, safety layer and scoring unchanged, so its numbers compare with the default engine's.

    engine = VllmEngine.load(run="runs/phi4-med", safety=layer)     # Engine.load's arguments
    engine.generate([[Message("user", q)] for q in questions], params)
    engine.run([engine.request(messages, params), ...])            # what eval's generate mode and the server call

The work is split in two. A default Engine built on the tokenizer and the model's config alone (no weights, see
inference/prompt_engine.py) renders the prompt, tokenizes it (BOS as training added it, message text never as
control tokens), splits stops into token ids and strings, screens the request and afterwards the answer. vLLM gets
those token ids (never text it would tokenize again: its own tokenizing would read a typed "<|im_end|>" as the
token) and SamplingParams(**sampling_args(request)); `generation` maps its RequestOutput back onto medtune's
Generation with medtune's own reasoning split (both pure, in inference/vllm_requests.py). An adapter is applied by
vLLM's LoRA support (LLM(enable_lora=True, max_lora_rank=R) and a LoRARequest per call), not merged; base and tuned
share one vLLM instance.

Where it differs from the default engine:
- greedy answers match up to kernel numerics; a seeded sample draws from vLLM's per-request generator, so its
  tokens differ from transformers' for the same seed;
- no token-by-token streaming: LLM.generate is offline, so a streamed request gets its whole result when its call
  ends (its reasoning, its answer, then the disclaimer, each as one delta; screened before any is sent). Streaming
  as it generates would need vLLM's AsyncLLMEngine;
- a cancelled request (its client left) is dropped only before its call starts: a running call runs to its end;
- batch_size is ignored: vLLM schedules its own batches within a call; no log-likelihood scoring (no engine.model);
- Stats.peak_memory_mb is 0.0 (not measured): vLLM's engine may live in another process and reserves its KV cache
  up front (model.vllm_gpu_memory_utilization); its own log states the sizes;
- the context window is model.max_length + the largest max_tokens (see window), not the model's whole context:
  a longer prompt is refused as the default engine refuses one beyond its context;
- a QLoRA run's base is quantized to 4-bit NF4 by vLLM as it loads (bitsandbytes); a DoRA adapter is refused.

vLLM is an optional extra (pip install 'medtune[vllm]', a CUDA GPU) imported only by load(), so the request
building and the result mapping are unit-tested without it (tests/unit/test_vllm_engine.py). The end-to-end path
(load, LoRA, generate) is checked only on a machine with a GPU and vLLM installed.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import ClassVar

from medtune.config import Config
from medtune.errors import MedtuneError, first_line
from medtune.inference import weights
from medtune.inference.decoding import CANCELLED
from medtune.inference.engine import Engine, Generation, Request
from medtune.inference.prompt_engine import PromptFront, prompt_engine
from medtune.inference.vllm_requests import cancelled, generation, prompt_input, sampling_args, whole_deltas
from medtune.models import gguf
from medtune.rundir import ADAPTER_FILE

INSTALL = "pip install 'medtune[vllm]' (vLLM needs a CUDA GPU)"
LORA_RANKS = (8, 16, 32, 64, 128, 256, 320, 512)  # the max_lora_rank values vLLM accepts


def require_vllm():
    """The vllm module, or a one-line MedtuneError that says how to install it."""
    try:
        import vllm
    except ImportError as error:
        raise MedtuneError(f"--engine vllm needs vLLM, which does not import here ({first_line(error)}): "
                           f"{INSTALL}") from None
    return vllm


def lora_rank(r: int) -> int:
    """The smallest max_lora_rank vLLM accepts that holds an adapter of rank r."""
    for rank in LORA_RANKS:
        if rank >= r:
            return rank
    raise MedtuneError(f"the adapter's LoRA rank {r} is above vLLM's largest, {LORA_RANKS[-1]}: "
                       "use --engine transformers, or merge the adapter (medtune merge) and serve the merged model")


def adapter_rank(folder: Path) -> int:
    """The largest rank in a PEFT adapter_config.json (r, and any per-module rank_pattern)."""
    cfg = json.loads((Path(folder) / ADAPTER_FILE).read_text())
    return max([int(cfg.get("r") or 8), *(int(r) for r in (cfg.get("rank_pattern") or {}).values())])


def window(cfg: Config, context_length: int | None) -> int:
    """vLLM's max_model_len: the longest sequence the run trained on (model.max_length) plus the longest answer
    medtune asks for (generation.max_tokens, eval.max_tokens), capped by the model's context. Not the whole
    context: vLLM refuses to start unless the KV cache holds one sequence of max_model_len, and Phi-4-mini's 131,072
    tokens need 16 GiB of it (32 layers x 8 KV heads x 128 x 2 (K and V) x 2 bytes = 128 KiB a token)."""
    wanted = cfg.model.max_length + max(cfg.generation.max_tokens, cfg.eval.max_tokens)
    return min(wanted, context_length) if context_length else wanted


def llm_args(cfg: Config, context_length: int | None, four_bit: bool = False) -> dict:
    """vllm.LLM's arguments for the config's base model: max_model_len is the window (see window), which the prompt
    engine also checks and caps requests against, so both engines leave a prompt the same room; `four_bit` (a QLoRA
    run's base): vLLM's in-flight bitsandbytes quantization, NF4 with double quantization as training loaded it."""
    m = cfg.model
    if m.rope_scaling:
        raise MedtuneError("model.rope_scaling is not passed on to vLLM: use --engine transformers")
    model = gguf.local_folder(m.name, m.gguf_cache)  # a .gguf model runs from its converted safetensors folder
    args = {"model": model, "tokenizer": gguf.local_folder(m.tokenizer, m.gguf_cache) if m.tokenizer else model,
            "revision": m.revision, "trust_remote_code": m.trust_remote_code, "dtype": m.dtype, "seed": cfg.seed,
            "max_model_len": window(cfg, context_length), "gpu_memory_utilization": m.vllm_gpu_memory_utilization}
    return args | ({"quantization": "bitsandbytes"} if four_bit else {})


def refuse_dora(folder: Path) -> None:
    """vLLM's LoRA support has no DoRA (its magnitude vectors are 'unsupported LoRA weight' there): one line, before
    vLLM starts."""
    cfg = json.loads((Path(folder) / ADAPTER_FILE).read_text())
    if cfg.get("use_dora"):
        raise MedtuneError(f"{folder}: a DoRA adapter (use_dora), which vLLM does not run: use --engine "
                           "transformers, or merge it (medtune merge) and give vLLM the merged folder")


# ---------------------------------------------------------------- one vLLM instance per process

_shared: dict = {}  # key, rank, llm, loras: the process's vLLM instance and the adapters it has been given


def shared_llm(vllm, args: dict, rank: int | None):
    """vLLM reserves most of the GPU's memory for its KV cache, so a second instance would not fit: base and tuned
    (eval --compare-base) share one, LoRA on or off per call; another model, or a larger rank, replaces it."""
    key = tuple(sorted(args.items()))
    if _shared.get("key") == key and (rank is None or (_shared["rank"] or 0) >= rank):
        return _shared["llm"]
    _shared.clear()
    gc.collect()  # the old instance's memory goes before the new one asks for it
    lora = {"enable_lora": True, "max_lora_rank": rank} if rank else {}
    _shared.update(key=key, rank=rank, llm=vllm.LLM(**args, **lora), loras={})
    return _shared["llm"]


def lora_id(path: Path) -> int:
    """vLLM caches adapters by integer id: one id per adapter folder, for the life of the shared instance."""
    loras = _shared.setdefault("loras", {})
    return loras.setdefault(str(Path(path).resolve()), len(loras) + 1)


# ---------------------------------------------------------------- the engine



class VllmEngine(PromptFront):
    """Engine's interface (PromptFront: the prompt engine's prompts and requests, generate, complete and stream on
    run), generating with vLLM."""

    engine_name: ClassVar[str] = "vllm"

    def __init__(self, llm, prompts: Engine, *, make_params: Callable[..., object], lora=None):
        self.llm, self.prompts, self.lora = llm, prompts, lora  # lora: a vllm LoRARequest, or None
        self.make_params = make_params  # vllm.SamplingParams (tests pass dict)
        self.name = prompts.name
        self._lock = threading.Lock()

    @classmethod
    def load(cls, model: str | None = None, adapter: str | None = None, run: str | None = None, *,
             config: Config | None = None, system_prompt: str | None = None, template: str | None = None,
             extra_eos_tokens: Sequence[str] = (), safety=None) -> VllmEngine:
        """Engine.load's arguments: the tokenizer and config go to the prompt engine, the weights to vLLM."""
        vllm = require_vllm()
        from vllm.lora.request import LoRARequest

        source = weights.resolve(config or weights.config_beside(model, adapter, run), adapter, run)
        if source.adapter:
            refuse_dora(source.adapter)
        prompts = prompt_engine(source, system_prompt, template, extra_eos_tokens, safety)
        rank = lora_rank(adapter_rank(source.adapter)) if source.adapter else None
        args = llm_args(source.config, prompts.context_length, weights.trained_in_4bit(source))
        prompts.context_length = args["max_model_len"]  # requests are checked and capped against vLLM's window
        llm = shared_llm(vllm, args, rank)
        lora = LoRARequest(source.name, lora_id(source.adapter), str(source.adapter)) if source.adapter else None
        return cls(llm, prompts, make_params=vllm.SamplingParams, lora=lora)

    # ------------------------------------------------------------ running

    def run(self, requests: list[Request]) -> list[Generation]:
        """Generate for any mix of requests in one vLLM call (sampling settings are per request), in order."""
        out: list[Generation | None] = [None] * len(requests)
        todo = []
        for i, request in enumerate(requests):
            if request.verdict is not None and request.verdict.blocked:
                out[i] = self.prompts.blocked_reply(request)  # the default engine's reply: same texts, callbacks
            elif request.cancel.is_set():
                out[i] = self._finish(request, cancelled(request))
            else:
                todo.append(i)
        for i, gen in zip(todo, self._generate([requests[i] for i in todo]) if todo else []):
            out[i] = gen
        return out  # type: ignore[return-value]

    def _generate(self, requests: list[Request]) -> list[Generation]:
        prompts = [prompt_input(r) for r in requests]
        params = [self.make_params(**sampling_args(r, self.eos_ids)) for r in requests]
        with self._lock:  # one call at a time: the server's scheduler and streams share the engine
            start = time.perf_counter()
            outputs = self.llm.generate(prompts, params, lora_request=self.lora, use_tqdm=False)
            seconds = time.perf_counter() - start
        return [self._finish(r, generation(r, o, seconds, len(requests), self.answer_header))
                for r, o in zip(requests, outputs)]

    def _finish(self, request: Request, gen: Generation) -> Generation:
        """Screened first (the default engine's answer screen and disclaimer), then streamed: a replaced answer
        never reaches a client; then on_finish."""
        if request.screen and gen.finish_reason != CANCELLED:
            gen = self.prompts.screened(dataclasses.replace(request, on_delta=None), gen)
        if request.on_delta is not None:
            for delta in whole_deltas(gen):
                request.on_delta(delta)
        if request.on_finish is not None:
            request.on_finish(gen)
        return gen
