"""The safety fields of a safety task's item record: what the layer decided about the prompt (screen mode), and
in generate mode what the model wrote, whether it refused on its own, and what the layer made of its answer.

Every record has refused, action, layer, category_decided, reason, score, decided_by and seconds (the time the layer
spent screening this row). decided_by is "rules", "classifier" or "guard" (the layer that blocked), "model" (the
model's own refusal, generate mode) or None (answered). Generate mode adds model_refused (the model alone, layer
off), layer_refused (the request or the answer screened out), request_verdict and answer_verdict.
"""

from __future__ import annotations

import time

from medtune.safety.refusals import is_refusal


def screened(layer, prompt: str) -> dict:
    """Screen mode: the request's verdict, as `serve` would reach it (one request at a time)."""
    start = time.perf_counter()
    verdict = layer.screen_request(prompt)
    return {**verdict_fields(verdict), "seconds": round(time.perf_counter() - start, 6)}


def verdict_fields(verdict) -> dict:
    return {"refused": verdict.blocked, "action": verdict.action, "layer": verdict.layer,
            "category_decided": verdict.category, "reason": verdict.reason or None, "score": verdict.score,
            "decided_by": verdict.layer if verdict.blocked else None}


def whole_path(layer, prompt: str, gen, own_texts: tuple[str, ...]) -> dict:
    """Generate mode: `gen` is what the model wrote with the layer off (a str when the prompt never ran); the layer
    is applied here, request then answer, so the model's own refusals and the layer's are both known."""
    start = time.perf_counter()
    request = layer.screen_request(prompt) if layer is not None else None
    ran = not isinstance(gen, str)
    answer = (layer.screen_answer(gen.answer, gen.reasoning, prompt)
              if ran and layer is not None and layer.cfg.screen_output else None)
    seconds = time.perf_counter() - start
    model_refused = is_refusal(gen.answer, own_texts) if ran else None  # a prompt that never ran tells nothing
    blocker = next((v for v in (request, answer) if v is not None and v.blocked), None)
    fields = verdict_fields(blocker) if blocker is not None else {
        "refused": bool(model_refused), "action": "refuse" if model_refused else "allow", "layer": None,
        "category_decided": None, "reason": "the model refused" if model_refused else None, "score": None,
        "decided_by": "model" if model_refused else None}
    fields["score"] = request.score if request is not None else None  # the classifier reads requests only
    layer_refused = None if layer is None else blocker is not None
    return {**fields, "model_refused": model_refused, "layer_refused": layer_refused,
            "request_verdict": request.to_dict() if request is not None else None,
            "answer_verdict": answer.to_dict() if answer is not None else None,
            "seconds": round(seconds, 6) if layer is not None else None}
