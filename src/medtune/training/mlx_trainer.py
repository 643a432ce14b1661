"""training.backend mlx: fine-tuning on mlx-lm, driven as a library, into the same run directory.

mlx-lm loads the model; the method (training/mlx_methods.py) puts its LoRA or DoRA layers in (the config's target
modules, rank, scale = alpha / r, dropout, top-N blocks; a 4-bit base for qlora) or unfreezes every weight (full);
the loop is medtune's own, for three reasons mlx-lm's `tuner.trainer.train` cannot meet: the loss
is taken on medtune's per-token masks (every assistant turn, as the torch backend trains), not from a prompt
length; a checkpoint holds the optimizer state and the step, so `--resume` continues the same curve (mlx-lm
restores the adapter only); and the loop calls medtune's own callbacks through transformers' CallbackHandler,
so the progress lines, metrics.jsonl, early stopping, the NaN guard and checkpoint publishing are the code the
torch backend runs. An adapter is written in PEFT's format (export/mlx.py's converter), every other verb reads
it, with mlx-lm's own adapter beside it in `mlx/`; a full fine-tune as a transformers model folder.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from medtune.config import Config
from medtune.rundir import RunDir
from medtune.training.mlx_methods import method_for
from medtune.training.trainer import Built, callbacks_for

OPTIMIZER_FILE, STATE_FILE = "optimizer.safetensors", "trainer_state.json"


@dataclass
class Batch:
    ids: np.ndarray  # (n, length) token ids, right-padded
    mask: np.ndarray  # (n, length) 1 where the loss is taken


def batches(examples: list, size: int, pad_id: int) -> list[Batch]:
    """Examples in their given order, `size` at a time, padded to each batch's longest."""
    out = []
    for start in range(0, len(examples), size):
        group = examples[start:start + size]
        width = max(e.length for e in group)
        ids = np.full((len(group), width), pad_id, dtype=np.int32)
        mask = np.zeros((len(group), width), dtype=np.float32)
        for i, e in enumerate(group):
            ids[i, :e.length], mask[i, :e.length] = e.input_ids, e.mask
        out.append(Batch(ids, mask))
    return out


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    """The training examples' order in an epoch: seeded, so a resumed run sees the same micro-batches."""
    return list(np.random.default_rng([seed, epoch]).permutation(n))




def schedule(cfg: Config, total_steps: int):
    """The learning rate per optimizer step: linear warm-up, then constant, linear or cosine decay to 0."""
    import mlx.optimizers as optim

    t = cfg.training
    warmup = t.warmup_steps or math.ceil(t.warmup_ratio * total_steps)
    rest = max(total_steps - warmup, 1)
    decay = {"constant": lambda: optim.schedulers.linear_schedule(t.learning_rate, t.learning_rate, rest),
             "linear": lambda: optim.schedulers.linear_schedule(t.learning_rate, 0.0, rest),
             "cosine": lambda: optim.schedulers.cosine_decay(t.learning_rate, rest, 0.0)}[t.lr_scheduler]()
    if not warmup:
        return decay
    ramp = optim.schedulers.linear_schedule(0.0, t.learning_rate, warmup)
    return optim.schedulers.join_schedules([ramp, decay], [warmup])


def optimizer(cfg: Config, lr):
    """The configured optimizer on the learning-rate schedule `lr`."""
    import mlx.optimizers as optim

    t = cfg.training
    if t.optimizer == "sgd":
        return optim.SGD(learning_rate=lr, weight_decay=t.weight_decay)
    if t.optimizer == "adam":
        return optim.Adam(learning_rate=lr)
    return optim.AdamW(learning_rate=lr, weight_decay=t.weight_decay)  # adamw_8bit too: the backend line says so






class MlxTrainer:
    """train(resume_from_checkpoint) and save_model(folder), with `state` a transformers TrainerState: what the run
    (training/run.py) and the callbacks read from the torch backend's Trainer."""

    def __init__(self, cfg: Config, run: RunDir, encoded: dict, tokenizer, plan, callbacks: list):
        import mlx.core as mx
        import mlx.nn as nn
        from mlx_lm.utils import load
        from transformers import TrainerControl, TrainerState, TrainingArguments
        from transformers.trainer_callback import CallbackHandler

        self.cfg, self.run, self.plan, self.tokenizer = cfg, run, plan, tokenizer
        self.train_examples, self.valid_examples = encoded["train"], encoded.get("valid") or []
        mx.random.seed(cfg.seed)
        from medtune.models.load import local_model_folder

        self.base_path = local_model_folder(cfg.model)
        self.model, _ = load(self.base_path)
        self.method = method_for(cfg, self.base_path)
        self.method.put_on(self.model)
        if cfg.training.gradient_checkpointing:  # mlx-lm's own: recompute each block's activations in backward
            from mlx_lm.tuner.trainer import grad_checkpoint

            grad_checkpoint(self.model.layers[0])
        self.lr = schedule(cfg, plan.total_steps)
        self.optimizer = optimizer(cfg, self.lr)
        self.loss_and_grad = nn.value_and_grad(self.model, summed_loss)
        self.state = TrainerState(max_steps=plan.total_steps, logging_steps=cfg.training.logging_steps,
                                  eval_steps=plan.eval_steps or plan.total_steps,
                                  save_steps=plan.save_steps or plan.total_steps)
        self.control = TrainerControl()
        self.args = TrainingArguments(output_dir=str(run.staging), report_to=[], use_cpu=True)
        # this loop decides when to log, evaluate and save (as the torch run's plan does), so transformers'
        # DefaultFlowCallback is left out, and its warning that it is missing is not shown
        quiet = logging.getLogger("transformers.trainer_callback")
        level, quiet.level = quiet.level, logging.ERROR
        try:
            self.handler = CallbackHandler(callbacks, None, tokenizer, None, None)
        finally:
            quiet.setLevel(level)

    # ------------------------------------------------------------ what the run reads

    def trainable_parameters(self) -> tuple[int, int]:
        from mlx.utils import tree_flatten

        trainable = sum(v.size for _, v in tree_flatten(self.model.trainable_parameters()))
        total = sum(v.size for _, v in tree_flatten(self.model.parameters()))
        return trainable, total

    def save_model(self, folder: str) -> None:
        """The run's weights where every verb reads them: a PEFT adapter (mlx-lm's beside it) or a model folder."""
        self.method.save(self.model, self.tokenizer, Path(folder))

    # ------------------------------------------------------------ the loop

    def train(self, resume_from_checkpoint: str | None = None) -> None:
        import mlx.core as mx

        skip = self._resume(Path(resume_from_checkpoint)) if resume_from_checkpoint else 0
        micro, accumulation = self.plan.micro_batch, self.plan.accumulation
        per_epoch = max(len(self.train_examples) // (micro * accumulation), 1)
        self.handler.on_train_begin(self.args, self.state, self.control)
        if self.cfg.training.eval_on_start and not skip and self.valid_examples:
            self._evaluate()
        window, started = [], time.perf_counter()
        while self.state.global_step < self.state.max_steps and not self.control.should_training_stop:
            epoch, index = divmod(self.state.global_step, per_epoch)
            order = epoch_order(len(self.train_examples), self.cfg.seed, epoch)
            step_examples = [self.train_examples[i] for i in order[index * micro * accumulation:
                                                                  (index + 1) * micro * accumulation]]
            mx.random.seed(self.cfg.seed * 1_000_003 + self.state.global_step)  # dropout: the same after a resume
            loss, tokens, norm = self._step(batches(step_examples, micro, self.tokenizer.pad_token_id))
            self.state.global_step += 1
            self.state.epoch = self.state.global_step / per_epoch
            self.state.num_input_tokens_seen += sum(e.length for e in step_examples)
            window.append(loss)
            self.control = self.handler.on_step_end(self.args, self.state, self.control)
            if self.state.global_step % self.cfg.training.logging_steps == 0 or self.control.should_log:
                # the rate for the next step, as transformers' Trainer logs it
                self._log({"loss": float(np.mean(window)), "grad_norm": norm,
                           "learning_rate": float(self.lr(self.state.global_step).item())})
                window = []
            if self._due(self.plan.eval_steps) and self.valid_examples:
                self._evaluate()
            if self._due(self.plan.save_steps):
                self._save()
        self.state.train_runtime = time.perf_counter() - started
        mx.eval(self.model.parameters())
        self.handler.on_train_end(self.args, self.state, self.control)

    def _step(self, micro_batches: list[Batch]) -> tuple[float, int, float]:
        """One optimizer step over the accumulated micro-batches: the summed loss over their supervised tokens,
        divided by the tokens of the whole step (as the torch backend normalises), clipped, applied."""
        import mlx.core as mx
        import mlx.optimizers as optim
        from mlx.utils import tree_map

        grads, total, tokens = None, 0.0, 0
        for b in micro_batches:
            (loss, count), g = self.loss_and_grad(self.model, mx.array(b.ids), mx.array(b.mask))
            grads = g if grads is None else tree_map(lambda x, y: x + y, grads, g)
            total, tokens = total + loss, tokens + count
        tokens = max(int(tokens.item()) if hasattr(tokens, "item") else int(tokens), 1)
        grads = tree_map(lambda x: x / tokens, grads)
        norm = 0.0
        if self.cfg.training.max_grad_norm > 0:
            grads, norm = optim.clip_grad_norm(grads, self.cfg.training.max_grad_norm)
            norm = float(norm.item())
        self.optimizer.update(self.model, grads)
        mx.eval(self.model.parameters(), self.optimizer.state)
        return float(total.item()) / tokens, tokens, norm

    def _due(self, every: int | None) -> bool:
        step = self.state.global_step
        return step == self.state.max_steps or bool(every and step % every == 0) or self.control.should_training_stop

    def _log(self, logs: dict) -> None:
        self.state.log_history.append({**logs, "step": self.state.global_step, "epoch": self.state.epoch})
        self.control = self.handler.on_log(self.args, self.state, self.control, logs)

    def _evaluate(self) -> None:
        import mlx.core as mx

        self.model.eval()
        total, tokens = 0.0, 0
        for b in batches(self.valid_examples, self.plan.micro_batch, self.tokenizer.pad_token_id):
            loss, count = summed_loss(self.model, mx.array(b.ids), mx.array(b.mask))
            total, tokens = total + float(loss.item()), tokens + int(count.item())
        self.model.train()
        metrics = {"eval_loss": total / max(tokens, 1)}
        self._log(metrics)
        self.control = self.handler.on_evaluate(self.args, self.state, self.control, metrics=metrics)

    def _save(self) -> None:
        """staging/checkpoint-<step>: the adapter (PEFT and mlx), the optimizer state and the trainer state; the
        CheckpointCallback gives it its final name once whole."""
        import mlx.core as mx
        from mlx.utils import tree_flatten

        folder = self.run.staging / f"checkpoint-{self.state.global_step}"
        self.save_model(str(folder))
        state = dict(tree_flatten(self.optimizer.state))
        mx.save_safetensors(str(folder / OPTIMIZER_FILE), {k: v for k, v in state.items() if isinstance(v, mx.array)})
        self.state.save_to_json(str(folder / STATE_FILE))
        self.control = self.handler.on_save(self.args, self.state, self.control)

    def _resume(self, checkpoint: Path) -> int:
        """The adapter, the optimizer state and the step of a checkpoint: the run goes on as if never stopped."""
        import mlx.core as mx
        from mlx.utils import tree_unflatten
        from transformers import TrainerState

        self.method.restore(self.model, checkpoint)
        self.optimizer.init(self.model.trainable_parameters())
        saved = mx.load(str(checkpoint / OPTIMIZER_FILE))
        self.optimizer.state = tree_unflatten(list({**dict(_flat(self.optimizer.state)), **saved}.items()))
        loaded = TrainerState.load_from_json(str(checkpoint / STATE_FILE))
        self.state.global_step, self.state.epoch = loaded.global_step, loaded.epoch
        self.state.log_history, self.state.num_input_tokens_seen = loaded.log_history, loaded.num_input_tokens_seen
        return loaded.global_step


def _flat(tree):
    from mlx.utils import tree_flatten

    return tree_flatten(tree)


def summed_loss(model, ids, mask):
    """(summed cross-entropy over the supervised next tokens, their count): position t predicts token t + 1, and
    the loss is taken where the mask of token t + 1 is 1."""
    import mlx.core as mx
    import mlx.nn as nn

    logits = model(ids[:, :-1])
    targets, weights = ids[:, 1:], mask[:, 1:]
    ce = nn.losses.cross_entropy(logits.astype(mx.float32), targets) * weights
    return ce.sum(), weights.sum()


def build(cfg: Config, run: RunDir, encoded: dict, tokenizer, plan, extra_callbacks=(), stream=None) -> Built:
    """The MLX trainer with medtune's callbacks, and what the start-up lines show."""
    import mlx.core as mx

    built = callbacks_for(cfg, run, stream or sys.stdout)
    trainer = MlxTrainer(cfg, run, encoded, tokenizer, plan, [*built.callbacks, *extra_callbacks])
    trainable, total = trainer.trainable_parameters()
    built.trainer = trainer
    dtype = _dtype(trainer.model)
    built.info = {
        "model": cfg.model.name, "architecture": type(trainer.model).__module__.rsplit(".", 1)[-1],
        "device": f"mlx {mx.default_device()}", "dtype": dtype, "attention": "mlx", "method": cfg.method,
        "trainable_params": trainable, "total_params": total,
        "trainable_percent": round(100.0 * trainable / max(total, 1), 4), "packing": plan.packing,
        "backend": "mlx", **trainer.method.describe(trainer.model, dtype),
    }
    return built


def _dtype(model) -> str:
    from mlx.utils import tree_flatten

    return str(next(v for _, v in tree_flatten(model.parameters())).dtype).removeprefix("mlx.core.")
