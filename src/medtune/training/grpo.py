"""The GRPO stage (training.stage = grpo): TRL's GRPOTrainer, configured from the rl section, on prompts rendered
exactly as medtune's engines render them, with medtune's rewards, callbacks and run directory.

Prompts go to TRL as text, which it tokenizes with the tokenizer's defaults (BOS added where the tokenizer adds
one). medtune renders each prompt with the run's template and system prompt, takes off a leading BOS the tokenizer
would add again, and checks that TRL's tokenization gives the token ids medtune's own engine gives: a prompt that
would train on other tokens than it is later asked with is refused, naming its record.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

from medtune import rundir as rd
from medtune.config import Config
from medtune.data.records import Record
from medtune.data.verifiable import Reference, reference_of
from medtune.errors import ConfigError, DataError
from medtune.training import args as args_mod
from medtune.training import distributed
from medtune.training.callbacks import REWARD


@dataclass
class PromptRow:
    """One verifiable problem as the GRPO stage samples it."""

    prompt: str  # what TRL tokenizes (a leading BOS taken off where the tokenizer adds it itself)
    ids: list[int]  # the prompt's token ids, as medtune's engine makes them
    reference: Reference
    source: str

    def to_row(self) -> dict:
        row = self.reference.to_row()
        # options as JSON text: Arrow would give every row the union of all rows' letters (None for the missing)
        return {"prompt": self.prompt, **row, "options": json.dumps(row["options"], ensure_ascii=False)}


def prompt_engine(cfg: Config, tokenizer):
    """medtune's default engine without weights (the model's config, this tokenizer, the run's template and system
    prompt): what renders and tokenizes every prompt generate, chat, serve and eval send."""
    from medtune.inference.engine import Engine
    from medtune.inference.prompt_engine import ModelFacts
    from medtune.models.load import load_model_config

    return Engine(ModelFacts(load_model_config(cfg.model)), tokenizer, template=cfg.data.template,
                  system_prompt=cfg.data.system_prompt)


def prompt_rows(engine, records: list[Record]) -> list[PromptRow]:
    """Each record's question as `engine` renders and tokenizes it (template, system prompt, message text never a
    control token), with its reference."""
    return [_prompt_row(engine, r) for r in records]


def _prompt_row(engine, record: Record) -> PromptRow:
    reference = reference_of(record)
    asked = record.messages[:max(i for i, m in enumerate(record.messages) if m.role == "user") + 1]
    text, ids = engine.prompt(asked), engine.prompt_ids(asked)
    tokenizer = engine.tokenizer
    trl_text = _without_added_bos(tokenizer, text)
    if tokenizer(trl_text)["input_ids"] != ids:
        raise DataError(f"{record.source}: the prompt's tokens as TRL makes them differ from medtune's (a special "
                        "token's text in the question, which medtune keeps as text, or a tokenizer that adds tokens "
                        "of its own): reword the record or leave it out")
    return PromptRow(trl_text, ids, reference, record.source)


def _without_added_bos(tokenizer, text: str) -> str:
    """The text without a leading BOS the tokenizer adds on its own (Llama, Mistral): TRL's call adds it again."""
    bos = tokenizer.bos_token_id
    adds = bos is not None and tokenizer("a")["input_ids"][:1] == [bos]
    return text[len(tokenizer.bos_token):] if adds and text.startswith(tokenizer.bos_token) else text


def fitting(rows: list[PromptRow], cfg: Config) -> tuple[list[PromptRow], list[str]]:
    """(rows whose prompt and longest completion fit model.max_length, sources of those that do not)."""
    room = cfg.model.max_length - cfg.rl.max_completion_length
    kept = [r for r in rows if len(r.ids) <= room]
    return kept, [r.source for r in rows if len(r.ids) > room]


def data_line(rows: dict, too_long: dict) -> str:
    """'data: 33 train / 8 valid prompts (31 multiple-choice), prompts of 180-412 tokens (mean 260)'."""
    train, valid = rows.get("train", []), rows.get("valid", [])
    lengths = [len(r.ids) for r in train]
    mcq = sum(1 for r in train if r.reference.letter)
    dropped = sum(len(v) for v in too_long.values())
    line = (f"data: {len(train)} train / {len(valid)} valid prompts ({mcq} multiple-choice, {len(train) - mcq} open), "
            f"prompts of {min(lengths)}-{max(lengths)} tokens (mean {sum(lengths) / len(lengths):.0f})")
    return line + (f"; {dropped} left out: no room for a whole completion within model.max_length" if dropped else "")


def to_dataset(rows: list[PromptRow]):
    from datasets import Dataset

    return Dataset.from_list([r.to_row() for r in rows])


def check_batches(cfg: Config, processes: int) -> None:
    """TRL samples whole groups: the completions of one step (batch x accumulation x processes) must hold
    num_generations for each prompt, and a validation batch whole groups of num_generations_eval."""
    t, rl = cfg.training, cfg.rl
    per_step = t.batch_size * t.gradient_accumulation_steps * processes
    if per_step % rl.num_generations:
        raise ConfigError(f"GRPO samples rl.num_generations = {rl.num_generations} completions per prompt, so the "
                          f"completions of a step (training.batch_size {t.batch_size} x gradient_accumulation_steps "
                          f"{t.gradient_accumulation_steps}{f' x {processes} processes' if processes > 1 else ''} = "
                          f"{per_step}) must be a multiple of it: e.g. training.batch_size={rl.num_generations}")


def eval_generations(cfg: Config) -> int:
    return cfg.rl.num_generations_eval or cfg.rl.num_generations


def eval_batch(cfg: Config) -> int:
    """Validation completions sampled together: whole groups, about 8 (one sequence at a time took minutes per
    validation on a CPU; TRL's default is training's batch size, which may split a group)."""
    group = eval_generations(cfg)
    return max(group, (8 // group) * group)


def grpo_config(cfg: Config, run: rd.RunDir, plan, dtype, device: str, resuming: bool = False):
    """GRPOConfig: the Trainer arguments every stage shares, then the rl section as TRL names it."""
    from trl import GRPOConfig

    rl = cfg.rl
    base = args_mod.trainer_args(cfg, run, plan, dtype, device, resuming)
    base["per_device_eval_batch_size"] = eval_batch(cfg)
    return GRPOConfig(
        **base, num_generations=rl.num_generations, num_generations_eval=eval_generations(cfg),
        max_completion_length=rl.max_completion_length, temperature=rl.temperature, top_p=rl.top_p,
        top_k=rl.top_k, repetition_penalty=rl.repetition_penalty, beta=rl.beta, loss_type=rl.loss_type,
        epsilon=rl.epsilon, epsilon_high=rl.epsilon_high, num_iterations=rl.num_iterations,
        scale_rewards=rl.scale_rewards, mask_truncated_completions=rl.mask_truncated_completions,
        use_vllm=rl.use_vllm, vllm_mode="colocate", vllm_gpu_memory_utilization=rl.vllm_gpu_memory_utilization,
        log_completions=rl.log_completions, reward_weights=None, remove_unused_columns=False,
        include_num_input_tokens_seen="no",  # GRPOTrainer counts prompt + completion tokens itself
    )


def check_vllm(cfg: Config, device: str) -> None:
    """rl.use_vllm needs a CUDA GPU and vLLM: refused before the model loads otherwise."""
    problem = vllm_problem(cfg, device)
    if problem:
        raise ConfigError(problem)


def vllm_problem(cfg: Config, device: str) -> str | None:
    if not cfg.rl.use_vllm:
        return None
    if device != "cuda":
        return ("rl.use_vllm samples with vLLM on a CUDA GPU; on this machine set rl.use_vllm=false (completions "
                "are then sampled with the model's own generate)")
    import importlib.util

    if importlib.util.find_spec("vllm") is None:
        return "rl.use_vllm needs vLLM: pip install 'medtune[vllm]'"
    return None


def check_init_from(cfg: Config) -> None:
    """rl.init_from names a finished LoRA run on this config's base (read without loading any weights)."""
    if not cfg.rl.init_from:
        return
    source = rd.RunDir(cfg.rl.init_from)
    if not (source.adapter / rd.ADAPTER_FILE).is_file():
        raise ConfigError(f"rl.init_from = {cfg.rl.init_from}: no LoRA adapter in {source.adapter} (a finished LoRA "
                          "or QLoRA run directory is expected: train it first)")
    base = _run_base(source)
    if base is not None and not _same_model(base, cfg.model.name):
        raise ConfigError(f"rl.init_from = {cfg.rl.init_from} was trained on {base}, not model.name = "
                          f"{cfg.model.name}: set model.name to its base")


def init_adapter(cfg: Config, model):
    """The model with rl.init_from's adapter on it, trainable; the run's base must be this config's model."""
    from peft import PeftModel

    check_init_from(cfg)
    return PeftModel.from_pretrained(model, str(rd.RunDir(cfg.rl.init_from).adapter), is_trainable=True)


def _run_base(run: rd.RunDir) -> str | None:
    """The base model the run trained on, from its config.yaml (read as every verb reads a run's), or None."""
    from medtune.inference.weights import config_beside

    return config_beside(run=str(run.root)).model.name if run.config.is_file() else None


def _same_model(a: str, b: str) -> bool:
    folder_a, folder_b = Path(a).expanduser(), Path(b).expanduser()
    if folder_a.exists() and folder_b.exists():
        return folder_a.resolve() == folder_b.resolve()
    return a == b


def build(cfg: Config, run: rd.RunDir, datasets: dict, tokenizer, plan, extra_callbacks=(), stream=None,
          resuming: bool = False):
    """The model (with rl.init_from's adapter, or a fresh one), the rewards and a GRPOTrainer (nothing runs)."""
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_callback import ProgressCallback as HFProgress
    from trl import GRPOTrainer

    from medtune.models.load import attention_note, default_device, describe_device, load_model, resolve_dtype
    from medtune.training import rewards
    from medtune.training.trainer import adapter_dtype, callbacks_for, describe, parallel

    device = distributed.device_for(default_device())
    check_vllm(cfg, device)
    dtype = resolve_dtype(cfg.model.dtype, device)
    chosen = rewards.build(cfg, run.root)
    args = grpo_config(cfg, run, plan, dtype, device, resuming)
    model = load_model(cfg.model, cfg.method, device, sharded=distributed.sharded() is not None,
                       prepare_kbit=not distributed.shards_parameters())
    peft_config = None
    if cfg.rl.init_from:
        model = init_adapter(cfg, model)
    elif cfg.method != "full":
        from medtune.models.lora import build_peft_config

        peft_config = build_peft_config(cfg.lora, model)
    args.reward_weights = chosen.weights
    built = callbacks_for(cfg, run, stream, REWARD)
    trainer = GRPOTrainer(
        model=model, reward_funcs=chosen.functions, args=args, train_dataset=datasets["train"],
        eval_dataset=datasets.get("valid"), processing_class=tokenizer, peft_config=peft_config,
        callbacks=[*built.callbacks, *extra_callbacks],
    )
    for cls in (HFProgress, PrinterCallback):
        trainer.remove_callback(cls)
    if cfg.method == "qlora":  # GRPOTrainer casts QLoRA adapters to bf16 too: fp32 where the run is not bf16
        adapter_dtype(trainer.model, dtype)
    built.trainer = trainer
    built.info = describe(cfg, trainer.model, peft_config, describe_device(device), dtype, plan)
    built.info["attention_note"] = attention_note(cfg.model.attn_implementation, dtype, device)
    built.info["parallel"] = parallel(trainer, plan.processes)
    built.info.update(stage="grpo", rewards=dict(zip(chosen.names, chosen.weights)), init_from=cfg.rl.init_from,
                      target_modules=built.info["target_modules"] or _adapter_targets(trainer.model))
    print(f"rewards: {', '.join(f'{n} x {w:g}' for n, w in zip(chosen.names, chosen.weights))}",
          file=stream or sys.stdout, flush=True)
    return built


def _adapter_targets(model) -> list[str]:
    config = getattr(model, "peft_config", {}).get("default")
    return sorted(config.target_modules) if config is not None and config.target_modules else []


def plan_line(cfg: Config, plan) -> str:
    """How many prompts and completions a step takes, and how they are sampled."""
    rl = cfg.rl
    prompts = plan.sequences_per_step // rl.num_generations
    return (f"grpo: {prompts} prompt(s) x {rl.num_generations} completions per step, up to "
            f"{rl.max_completion_length} tokens at temperature {rl.temperature:g}, loss {rl.loss_type}, "
            f"beta {rl.beta:g}, {'vLLM (colocated)' if rl.use_vllm else 'generate()'}"
            + (f"; starts from {rl.init_from}'s adapter" if rl.init_from else "; a fresh adapter"))
