"""Rendered text -> token ids + a loss mask (assistant tokens only), the overlong policy, and the length audit.

The mask comes from character offsets of one tokenization of the whole text, so it is exact whatever the
template: no re-tokenising of pieces (which can merge differently at the seams).
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass

import numpy as np

from medtune.data.templates import Rendered
from medtune.errors import DataError

# Why an example longer than max_length is a problem, most severe first.
PROMPT_OVERFLOW = "prompt_overflow"  # no trained token survives the cut
ANSWER_LOST = "answer_lost"  # only reasoning survives: the model never sees the answer
ANSWER_CUT = "answer_cut"  # part of the answer (and the end token) is cut


@dataclass
class Encoded:
    input_ids: list[int]
    mask: list[int]  # 1 where the loss is taken
    answer_token: int  # index of the first token of the final answer
    source: str = ""

    @property
    def length(self) -> int:
        return len(self.input_ids)

    @property
    def first_trained(self) -> int:
        return self.mask.index(1) if 1 in self.mask else len(self.mask)

    def overflow(self, max_length: int) -> str | None:
        """None when it fits; else what truncation to max_length would cost."""
        if self.length <= max_length:
            return None
        if self.first_trained >= max_length:
            return PROMPT_OVERFLOW
        return ANSWER_LOST if self.answer_token >= max_length else ANSWER_CUT


def _needs_bos(tokenizer) -> bool:
    """True when the tokenizer normally starts sequences with BOS (Llama, Mistral): templates may not add it."""
    bos = tokenizer.bos_token_id
    if bos is None:
        return False
    return tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos]


def encode_batch(
    rendered: list[Rendered], tokenizer, sources: list[str] | None = None, train_on_prompt: bool = False
) -> list[Encoded]:
    """Tokenize every rendered example once and derive its loss mask from character offsets."""
    if not getattr(tokenizer, "is_fast", False):
        raise DataError(f"tokenizer {tokenizer.name_or_path!r} is not a fast tokenizer: medtune needs offsets")
    sources = sources or [""] * len(rendered)
    bos = tokenizer.bos_token_id if _needs_bos(tokenizer) else None
    out = []
    for start in range(0, len(rendered), CHUNK):
        chunk = rendered[start : start + CHUNK]
        # The Rust tokenizer directly: the Python wrapper's per-token conversions cost 3x the tokenizing.
        encodings = tokenizer.backend_tokenizer.encode_batch([r.text for r in chunk], add_special_tokens=False)
        for r, enc, source in zip(chunk, encodings, sources[start : start + CHUNK]):
            add_bos = bos is not None and not r.text.startswith(tokenizer.bos_token)
            out.append(_encode_one(r, enc.ids, enc.offsets, source, bos if add_bos else None, train_on_prompt))
    return out


CHUNK = 1024  # examples per tokenizer call: keeps the offsets of only one chunk in memory


def _encode_one(r: Rendered, ids: list, offsets: list, source: str, bos: int | None, train_on_prompt: bool) -> Encoded:
    starts = [o[0] for o in offsets]
    mask = [0] * len(ids)
    for begin, end in r.spans:
        first, last = bisect_left(starts, begin), bisect_left(starts, end)
        mask[first:last] = [1] * (last - first)
    if train_on_prompt and r.spans:  # everything up to the end of the last trained span
        last = bisect_left(starts, r.spans[-1][1])
        mask[:last] = [1] * last
    answer_token = bisect_left(starts, r.answer_start)
    if bos is not None:
        return Encoded([bos, *ids], [0, *mask], answer_token + 1, source)
    return Encoded(list(ids), mask, answer_token, source)


def apply_overlong(encoded: list[Encoded], max_length: int, policy: str) -> tuple[list[Encoded], dict[str, list]]:
    """Keep, truncate or refuse examples longer than max_length. Returns (kept, {reason: [sources dropped]})."""
    kept, dropped = [], {"overlong": [], "no_trained_tokens": []}
    over = [e for e in encoded if e.overflow(max_length)]
    if over and policy == "error":
        first = ", ".join(e.source for e in over[:5])
        raise DataError(f"{len(over)} examples exceed model.max_length={max_length} tokens (first: {first}); "
                        "raise model.max_length, or set data.overlong to drop or truncate")
    for e in encoded:
        reason = e.overflow(max_length)
        if reason and policy == "drop":
            dropped["overlong"].append(e.source)
            continue
        if reason:
            e = Encoded(e.input_ids[:max_length], e.mask[:max_length], e.answer_token, e.source)
        if 1 not in e.mask:  # never train silently on an example with nothing to learn
            dropped["no_trained_tokens"].append(e.source)
            continue
        kept.append(e)
    return kept, dropped


def length_audit(encoded: list[Encoded], max_length: int) -> dict:
    """Token counts (p50/p90/p99/max) and how many examples truncation to max_length would hurt, and how."""
    if not encoded:
        return {"examples": 0, "max_length": max_length}
    lengths = np.array([e.length for e in encoded])
    reasons = [e.overflow(max_length) for e in encoded]
    return {
        "examples": len(encoded),
        "max_length": max_length,
        "tokens": {
            "p50": int(np.percentile(lengths, 50)),
            "p90": int(np.percentile(lengths, 90)),
            "p99": int(np.percentile(lengths, 99)),
            "max": int(lengths.max()),
            "mean": round(float(lengths.mean()), 1),
        },
        "trained_tokens": int(sum(sum(e.mask) for e in encoded)),
        "exceed_max_length": sum(r is not None for r in reasons),
        "would_lose_answer": {
            ANSWER_CUT: reasons.count(ANSWER_CUT),
            ANSWER_LOST: reasons.count(ANSWER_LOST),
            PROMPT_OVERFLOW: reasons.count(PROMPT_OVERFLOW),
        },
    }
