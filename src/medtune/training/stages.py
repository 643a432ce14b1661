"""What differs between the training stages (training.stage): the datasets a trainer reads, the plan's batch
layout, the trainer built, and what validation measures. Everything else (the run directory, resume, checkpoints,
the report) is the run's (training/run.py), the same for both.

    SFTStage     SFTTrainer on token ids + loss masks; validation loss, lower is better
    MlxSFTStage  the same examples and masks on mlx-lm (training.backend mlx: training/mlx_trainer.py)
    GRPOStage    GRPOTrainer on rendered prompts + references; validation reward, higher is better
"""

from __future__ import annotations

import dataclasses

from medtune.config import Config
from medtune.errors import DataError
from medtune.training import args as args_mod
from medtune.training.callbacks import LOSS, REWARD, Objective


class SFTStage:
    name = "sft"
    objective: Objective = LOSS

    def datasets(self, tr) -> dict:
        from medtune.training.examples import to_dataset

        return {name: to_dataset(e) for name, e in tr.encoded.items() if e}

    def plan(self, cfg: Config, tr_encoded: dict, varlen: bool) -> args_mod.Plan:
        return args_mod.plan(cfg, bool(tr_encoded.get("valid")), len(tr_encoded["train"]), varlen)

    def build(self, tr, datasets: dict, callbacks: list):
        from medtune.training.trainer import build

        return build(tr.cfg, tr.run, datasets, tr.tokenizer, tr.plan, callbacks, tr.out, tr.checkpoint is not None)

    def lines(self, cfg: Config, plan) -> list[str]:
        return []

    def data_line(self, data) -> str:
        return data.line()

    def check(self, cfg: Config, tokenizer, prepared, encoded: dict) -> list[str]:
        """--dry-run: what this stage checks before loading weights, beyond the plan (nothing more for SFT)."""
        return []


class GRPOStage:
    """Prompts: the records prepare kept (after the length policy), rendered for sampling (training/grpo.py)."""

    name = "grpo"
    objective: Objective = REWARD

    def __init__(self):
        self.rows: dict = {}  # split -> [PromptRow], made by datasets()
        self.too_long: dict = {}

    def prompts(self, cfg: Config, tokenizer, prepared, encoded: dict) -> dict:
        """split -> PromptRows of the records prepare kept, whose prompt leaves room for a whole completion."""
        from medtune.training.grpo import fitting, prompt_engine, prompt_rows

        if not self.rows:
            engine = prompt_engine(cfg, tokenizer)
            for name in ("train", "valid"):
                kept = {e.source for e in encoded.get(name, [])}
                records = [r for r in prepared.splits.get(name, []) if r.source in kept]
                self.rows[name], self.too_long[name] = fitting(prompt_rows(engine, records), cfg)
            if not self.rows["train"]:
                raise DataError(f"no training prompt leaves room for a completion of rl.max_completion_length = "
                                f"{cfg.rl.max_completion_length} tokens within model.max_length = "
                                f"{cfg.model.max_length}: raise model.max_length or lower the completion length")
        return self.rows

    def datasets(self, tr) -> dict:
        from medtune.training.grpo import to_dataset

        rows = self.prompts(tr.cfg, tr.tokenizer, tr.prepared, tr.encoded)
        return {name: to_dataset(split) for name, split in rows.items() if split}

    def data_line(self, data) -> str:
        """Prompts, not supervised tokens: GRPO trains on what the model samples."""
        from medtune.training.grpo import data_line

        return data_line(self.rows, self.too_long)

    def check(self, cfg: Config, tokenizer, prepared, encoded: dict) -> list[str]:
        """--dry-run: the prompts render and tokenize as the engine's, the rewards exist (a judge endpoint answers),
        rl.init_from is a run on this base. vLLM on a machine without it is a note: the dry run plans a GPU job."""
        from medtune.models.load import default_device
        from medtune.training import distributed, rewards
        from medtune.training.grpo import check_init_from, vllm_problem

        self.prompts(cfg, tokenizer, prepared, encoded)
        check_init_from(cfg)
        chosen = rewards.build(cfg)
        lines = [f"rewards: {', '.join(f'{n} x {w:g}' for n, w in zip(chosen.names, chosen.weights))}"]
        problem = vllm_problem(cfg, distributed.device_for(default_device()))
        return lines + ([f"note: not on this machine: {problem}"] if problem else [])

    def plan(self, cfg: Config, tr_encoded: dict, varlen: bool) -> args_mod.Plan:
        """Steps count completions: each prompt is sampled rl.num_generations times."""
        from medtune.training import distributed
        from medtune.training.grpo import check_batches

        check_batches(cfg, distributed.world_size())
        unpacked = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, packing="none"))
        n = len(tr_encoded["train"]) * cfg.rl.num_generations
        return args_mod.plan(unpacked, bool(tr_encoded.get("valid")), n, varlen)

    def build(self, tr, datasets: dict, callbacks: list):
        from medtune.training.grpo import build

        return build(tr.cfg, tr.run, datasets, tr.tokenizer, tr.plan, callbacks, tr.out, tr.checkpoint is not None)

    def lines(self, cfg: Config, plan) -> list[str]:
        from medtune.training.grpo import plan_line

        return [plan_line(cfg, plan)]


class MlxSFTStage(SFTStage):
    """SFT on mlx-lm: the same plan, data line and checks; the examples go to the trainer as they are."""

    def datasets(self, tr) -> dict:
        return {name: e for name, e in tr.encoded.items() if e}

    def build(self, tr, datasets: dict, callbacks: list):
        from medtune.training.mlx_trainer import build

        return build(tr.cfg, tr.run, datasets, tr.tokenizer, tr.plan, callbacks, tr.out)


def stage_of(cfg: Config):
    """The stage the config asks for, on the backend it resolves to (training/backend.py)."""
    from medtune.training.backend import resolve

    if resolve(cfg).name == "mlx":
        return MlxSFTStage()
    return {"sft": SFTStage, "grpo": GRPOStage}[cfg.training.stage]()
