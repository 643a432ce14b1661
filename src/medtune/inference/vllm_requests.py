"""vLLM's side of a request, as pure functions: medtune's Request -> vLLM's prompt and SamplingParams arguments,
vLLM's RequestOutput -> medtune's Generation. Nothing here imports vllm, so all of it is unit-tested without a GPU
(tests/unit/test_vllm_engine.py); inference/vllm_engine.py loads vLLM and runs the calls.
"""

from __future__ import annotations

from medtune.inference.decoding import CANCELLED, LENGTH, STOP
from medtune.inference.engine import Generation, Request, Stats
from medtune.inference.reasoning import ANSWER, REASONING, Delta, Split, prompt_opens_reasoning, split_output

FINISH = {"stop": STOP, "length": LENGTH, "abort": CANCELLED}  # vLLM's finish_reason -> medtune's


def prompt_input(request: Request) -> dict:
    """vLLM's TokensPrompt: the ids medtune built, so both engines run the very same prompt."""
    return {"prompt_token_ids": list(request.prompt_ids)}


def sampling_args(request: Request, eos_ids: set[int]) -> dict:
    """vllm.SamplingParams(**sampling_args(...)) for one Request: its budget (already capped by the context
    window), medtune's stops (added tokens by id, the rest as strings) and the model's EOS ids unless ignore_eos.
    Every knob is explicit, so neither library's defaults leak in."""
    p = request.params
    sampled = not p.greedy
    return {
        "n": 1,
        "max_tokens": request.max_tokens,
        "temperature": p.temperature,
        "top_p": p.top_p if sampled else 1.0,  # greedy: transformers ignores them too
        "top_k": (p.top_k or -1) if sampled else -1,  # medtune's 0 (off) is vLLM's -1
        "repetition_penalty": p.repetition_penalty,
        "seed": p.seed if sampled else None,  # greedy draws nothing
        "stop": list(request.stop_strings),
        "stop_token_ids": sorted(request.stop_ids | (set() if p.ignore_eos else eos_ids)),
        "ignore_eos": p.ignore_eos,
        "skip_special_tokens": True,  # as medtune decodes
        "spaces_between_special_tokens": False,  # transformers' fast decode adds none around <think> either
        "include_stop_str_in_output": False,  # medtune's text ends before a stop string
    }


def generation(request: Request, output, seconds: float, batch_size: int,
               answer_header: str | None = None) -> Generation:
    """vLLM's RequestOutput (duck-typed: .outputs[0].text/.token_ids/.finish_reason/.stop_reason,
    .prompt_token_ids) as medtune's Generation, split into reasoning and answer as the default engine splits."""
    done = output.outputs[0]
    reason = FINISH.get(done.finish_reason, CANCELLED)  # None: vLLM never finished it
    ids = list(done.token_ids)
    counted = len(ids)  # medtune counts the stop token among the generated ones
    if reason == STOP and ids and not isinstance(done.stop_reason, str):
        ids = ids[:-1]  # ended on EOS (stop_reason None) or a stop token (its id): token_ids leave it out
    split = Split(None, done.text, True) if request.raw else \
        split_output(done.text, prompt_opens_reasoning(request.prompt), answer_header)
    prompt_ids = getattr(output, "prompt_token_ids", None) or request.prompt_ids
    stats = Stats(len(prompt_ids), counted, seconds, first_token_s(output), 0.0, batch_size)
    return Generation(done.text, split.reasoning, split.answer, reason, split.reasoning_finished, stats, ids,
                      request.prompt)


def first_token_s(output) -> float | None:
    """Time to first token from vLLM's request metrics, when this vLLM version fills them in."""
    metrics = getattr(output, "metrics", None)
    first, arrived = getattr(metrics, "first_token_time", None), getattr(metrics, "arrival_time", None)
    return first - arrived if first is not None and arrived is not None else None


def whole_deltas(gen: Generation) -> list[Delta]:
    """A finished Generation as a stream's deltas: the layer's emergency advice, the reasoning, the answer, then
    the layer's disclaimer (the order the default engine streams them in)."""
    parts = [(ANSWER, gen.advice), (REASONING, gen.reasoning), (ANSWER, gen.plain_answer), (ANSWER, gen.disclaimer)]
    return [Delta(kind, text) for kind, text in parts if text]


def cancelled(request: Request) -> Generation:
    """A request whose client left before its call started: nothing generated."""
    stats = Stats(len(request.prompt_ids), 0, 0.0, None, 0.0)
    return Generation("", None, "", CANCELLED, True, stats, [], request.prompt)
