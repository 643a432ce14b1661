"""A short next-token warm-up for `medtune new-model --pretrain-steps N`.

A random model writes noise however it is fine-tuned, so a demo of LoRA on it shows nothing. A few hundred steps
of plain language-model training on the tokenizer's text give a base that already writes words: fine-tuning then
has something to adapt (the chat layout, <think> reasoning), as it does on a real pretrained model.
"""

from __future__ import annotations

import time

WINDOW = 128  # tokens per training window
BATCH = 16  # windows per step
LEARNING_RATE = 3e-3


def warm_up(model, tokenizer, texts: list[str], steps: int, seed: int = 0) -> dict:
    """Train `model` in place on random windows of the joined texts; returns first/last loss and seconds.

    A plain loop, not transformers' Trainer: one token tensor, a fixed step count and no checkpoints, so the
    Trainer's data pipeline would only add start-up time to a step that takes milliseconds."""
    import torch

    ids = torch.tensor(tokenizer("\n\n".join(texts), add_special_tokens=False, verbose=False)["input_ids"])
    if len(ids) <= WINDOW + 1:
        raise ValueError(f"{len(ids)} tokens of text: too little to warm up on (need more than {WINDOW + 1})")
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
    tail = losses[-10:]  # one step's loss is noisy; the mean of the last few says where it ended
    return {"steps": steps, "first_loss": losses[0], "last_loss": sum(tail) / len(tail), "tokens": len(ids),
            "seconds": time.perf_counter() - started}
