"""A short next-token warm-up for `medtune new-model --pretrain-steps N`.

A random model writes noise however it is fine-tuned, so a demo of LoRA on it shows nothing. A few hundred steps
of language-model training on the records, written out in the model's chat template, give a small "instruct" base
that already writes words in the turn layout, as a real instruct model does; LoRA then has something to adapt.
(Plain text alone is not enough: the role and <think> tokens would keep random embeddings that a frozen-base
adapter cannot move.)
"""

from __future__ import annotations

import time

WINDOW = 128  # tokens per training window
BATCH = 16  # windows per step
LEARNING_RATE = 3e-3


def conversation_texts(texts_or_rows: list, tokenizer) -> list[str]:
    """Records (dicts in any layout prepare reads) rendered through the tokenizer's chat template; plain strings,
    or rows that are not conversations, stay as they are."""
    from medtune.data.formats import convert
    from medtune.data.templates import render
    from medtune.errors import DataError

    rows = [r for r in texts_or_rows if isinstance(r, dict)]
    if not rows:
        return [t for t in texts_or_rows if isinstance(t, str)]
    try:
        return [render(record, tokenizer, "auto").text for record in convert(rows)]
    except DataError:  # not a conversation layout: its string values are the text
        return [v for row in rows for v in row.values() if isinstance(v, str)]


def warm_up(model, tokenizer, texts: list[str], steps: int, seed: int = 0) -> dict:
    """Train `model` in place on random windows of the joined texts; returns first/last loss and seconds.

    A plain loop, not transformers' Trainer: one token tensor, a fixed step count and no checkpoints, so the
    Trainer's data pipeline would only add start-up time to a step that takes milliseconds."""
    import torch

    ids = torch.tensor(tokenizer("\n\n".join(texts), add_special_tokens=False, verbose=False)["input_ids"])
    if len(ids) <= WINDOW + 1:
        raise ValueError(f"{len(ids)} tokens of text: too little to warm up on (need more than {WINDOW + 1})")
    threads = torch.get_num_threads()
    if model.num_parameters() < 10_000_000:  # a model this small runs faster on one thread than on two
        torch.set_num_threads(1)
    try:
        losses, seconds = _train(model, ids, steps, seed)
    finally:
        torch.set_num_threads(threads)
    tail = losses[-10:]  # one step's loss is noisy; the mean of the last few says where it ended
    return {"steps": steps, "first_loss": losses[0], "last_loss": sum(tail) / len(tail), "tokens": len(ids),
            "seconds": seconds}


def _train(model, ids, steps: int, seed: int) -> tuple[list[float], float]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)
    model.train()
    started, losses = time.perf_counter(), []
    for _ in range(steps):
        starts = torch.randint(0, len(ids) - WINDOW, (BATCH,), generator=generator)
        batch = torch.stack([ids[s: s + WINDOW] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    model.eval()
    return losses, time.perf_counter() - started
