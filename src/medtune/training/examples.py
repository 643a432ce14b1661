"""Prepared examples -> the tokenized datasets SFTTrainer reads.

Each row is `input_ids` + `completion_mask` (1 where the loss is taken: the assistant turns and their end token,
as computed by medtune.data.tokenize from the template's character spans). With `completion_only_loss=True`
SFTTrainer turns that mask into labels (-100 elsewhere); nothing is re-tokenized or re-templated by TRL.
"""

from __future__ import annotations

from dataclasses import dataclass

from medtune.data.tokenize import Encoded


@dataclass
class DataSummary:
    train_examples: int
    valid_examples: int
    train_tokens: int
    supervised_tokens: int  # tokens the loss is taken on, over the training split
    dropped: dict  # reason -> count, per split, from the length policy

    def line(self) -> str:
        lost = {f"{split} {reason}": len(v) for split, reasons in self.dropped.items()
                for reason, v in reasons.items() if v}
        extra = ("; dropped " + ", ".join(f"{n} ({k.replace('_', ' ')})" for k, n in lost.items())) if lost else ""
        share = 100.0 * self.supervised_tokens / max(self.train_tokens, 1)
        return (f"data: {self.train_examples} train / {self.valid_examples} valid examples, {self.train_tokens:,} "
                f"tokens, {self.supervised_tokens:,} trained on ({share:.0f}%){extra}")


def to_dataset(encoded: list[Encoded]):
    """A datasets.Dataset of input_ids + completion_mask, in the order given."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [e.input_ids for e in encoded],
                              "completion_mask": [e.mask for e in encoded]})


def summarize(encoded: dict[str, list[Encoded]], dropped: dict) -> DataSummary:
    train = encoded.get("train", [])
    return DataSummary(len(train), len(encoded.get("valid", [])), sum(e.length for e in train),
                       sum(sum(e.mask) for e in train), dropped or {})


def trainable(encoded: dict, dropped: dict) -> tuple[dict, dict]:
    """Drop (and count) examples with no trained token after position 0: the first token is never a target."""
    kept, lost = {}, {name: dict(reasons) for name, reasons in dropped.items()}
    for name, examples in encoded.items():
        kept[name] = [e for e in examples if 1 in e.mask[1:]]
        gone = [e.source for e in examples if 1 not in e.mask[1:]]
        if gone:
            lost.setdefault(name, {}).setdefault("no_trained_tokens", []).extend(gone)
    return kept, lost
