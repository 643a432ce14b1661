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
    batch = tokenizer([r.text for r in rendered], add_special_tokens=False, return_offsets_mapping=True)
    add_bos = _needs_bos(tokenizer)
    out = []
    for r, ids, offsets, source in zip(rendered, batch["input_ids"], batch["offset_mapping"], sources):
        out.append(_encode_one(r, list(ids), offsets, source, add_bos and r.text and
                               not r.text.startswith(tokenizer.bos_token), tokenizer.bos_token_id, train_on_prompt))
    return out


def _encode_one(r: Rendered, ids, offsets, source, add_bos, bos_id, train_on_prompt) -> Encoded:
    starts = np.fromiter((o[0] for o in offsets), dtype=np.int64, count=len(offsets))
    mask = np.zeros(len(ids), dtype=np.int8)
    for begin, end in r.spans:
        mask[(starts >= begin) & (starts < end)] = 1
    if train_on_prompt and r.spans:  # everything up to the end of the last trained span
        mask[: int(np.searchsorted(starts, r.spans[-1][1]))] = 1
    answer_token = bisect_left(starts.tolist(), r.answer_start)
    if add_bos:
        ids, mask, answer_token = [bos_id, *ids], np.concatenate([[0], mask]), answer_token + 1
    return Encoded(list(ids), mask.tolist(), answer_token, source)


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
