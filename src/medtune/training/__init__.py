"""`medtune train` internals: one run from a config to a complete run directory (its layout: medtune.rundir).

    run.py          one training run: prepare, build, fit, leave a complete run directory behind
    examples.py     prepared examples -> the tokenized datasets SFTTrainer reads (input_ids + completion_mask)
    stages.py       what differs between training.stage sft and grpo: datasets, plan, trainer, validation measure
    args.py         the training section -> the Trainer arguments both stages share, TRL's SFTConfig (batch plan)
    trainer.py      the model, its adapter and an SFTTrainer wired with the callbacks; the start-up summary lines
    backend.py      training.backend: torch or mlx (auto: mlx on Apple silicon with mlx-lm), and what mlx cannot do
    mlx_trainer.py  SFT on mlx-lm with medtune's masks, callbacks, checkpoints and a PEFT adapter
    mlx_methods.py  what mlx trains: LoRA / DoRA / qlora (4-bit mlx base) adapters, or the whole model (full)
    grpo.py         the GRPO stage: prompts as the engines render them, GRPOConfig, rl.init_from, a GRPOTrainer
    rewards.py      the GRPO rewards on evaluation's own scoring (format, mcq, match, similarity, judge, length)
    callbacks.py    progress lines + metrics.jsonl, early stopping, the NaN guard, whole checkpoints
    faults.py       running the trainer, and the ways training fails turned into one actionable line
    tracking.py     tensorboard, wandb and mlflow set up from the config
    report.py       run.json's final figures, plots/loss.png (and rewards.png) and the README.md model card
    dryrun.py       --dry-run: the resolved config, length audit and trainable parameters, no weights loaded
    distributed.py  which process this is under a launcher; rank 0 alone writes; barriers around checkpoints
    launch.py       `--nproc N` / `--accelerate-config`: start the processes through torchrun or accelerate launch
"""
