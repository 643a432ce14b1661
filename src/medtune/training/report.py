"""What a run leaves for people when it ends: run.json's final figures, plots/loss.png and a README.md model card,
all written by `write_run_report` (the one place the end of a run is written)."""

from __future__ import annotations

from pathlib import Path

from medtune import rundir as rd
from medtune.config import Config
from medtune.models.gguf import gguf_file


def write_run_report(cfg: Config, run: rd.RunDir, info: dict) -> None:
    """run.json with the last logged losses, the loss plot and the model card."""
    rows = rd.read_metrics(run.metrics)
    info.update(final_train_loss=_last(rows, "train_loss"), final_val_loss=_last(rows, "val_loss"),
                start_val_loss=_first(rows, "val_loss"))
    if cfg.training.stage == "grpo":
        info.update(final_train_reward=_last(rows, "reward"), final_val_reward=_last(rows, "val_reward"),
                    start_val_reward=_first(rows, "val_reward"))
    rd.write_json(run.run_json, info)
    title = f"{Path(cfg.output_dir).name}: {cfg.model.name}"
    plot_losses(rows, run.loss_plot, title)
    plot_rewards(rows, run.loss_plot.with_name("rewards.png"), title)
    run.readme.write_text(model_card(cfg, info), encoding="utf-8")


def _first(rows: list[dict], key: str):
    """The value logged at step 0 (the validation before training), else None."""
    return next((r[key] for r in rows if r.get("step") == 0 and r.get(key) is not None), None)


def _last(rows: list[dict], key: str):
    return next((r[key] for r in reversed(rows) if r.get(key) is not None), None)


def plot_losses(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """Train and validation loss against step; None when nothing was logged."""
    train = [(r["step"], r["train_loss"]) for r in rows if r.get("train_loss") is not None]
    val = [(r["step"], r["val_loss"]) for r in rows if r.get("val_loss") is not None]
    if not train and not val:
        return None
    import matplotlib

    matplotlib.use("Agg")  # files only: no display on training machines
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    if train:
        ax.plot(*zip(*train), label="train loss", linewidth=1.2)
    if val:
        ax.plot(*zip(*val), "o-", label="validation loss", linewidth=1.5, markersize=4)
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_rewards(rows: list[dict], path: Path, title: str = "") -> Path | None:
    """GRPO: each reward's mean per logged step (and the validation reward), with the completions' clipped share
    on a second axis; None when no reward was logged."""
    names = sorted({k for r in rows for k in r if k.startswith("reward_") and not k.endswith("_std")})
    if not names and not any(r.get("val_reward") is not None for r in rows):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=120)
    for name in ["reward", *names]:
        points = [(r["step"], r[name]) for r in rows if r.get(name) is not None]
        if points:
            ax.plot(*zip(*points), label=name.replace("_", " "), linewidth=1.5 if name == "reward" else 1.0)
    val = [(r["step"], r["val_reward"]) for r in rows if r.get("val_reward") is not None]
    if val:
        ax.plot(*zip(*val), "o-", label="validation reward", linewidth=1.5, markersize=4)
    ax.set(xlabel="step", ylabel="mean reward", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


HYPERPARAMETERS = [
    ("method", lambda c: c.method), ("max_length", lambda c: c.model.max_length),
    ("lora r / alpha / dropout", lambda c: f"{c.lora.r} / {c.lora.alpha} / {c.lora.dropout}"),
    ("batch size x accumulation", lambda c: f"{c.training.batch_size} x {c.training.gradient_accumulation_steps}"),
    ("length", lambda c: f"{c.training.max_steps} steps" if c.training.max_steps > 0
        else f"{c.training.epochs:g} epochs"),
    ("learning rate, scheduler", lambda c: f"{c.training.learning_rate:g}, {c.training.lr_scheduler}"),
    ("optimizer, weight decay", lambda c: f"{c.training.optimizer}, {c.training.weight_decay:g}"),
    ("template", lambda c: c.data.template), ("seed", lambda c: c.seed),
]


def model_card(cfg: Config, info: dict) -> str:
    """A short README.md: what was trained on what, how, the losses reached, and how to load it."""
    weights = info.get("weights_dir", "adapter")
    lines = [
        f"# {Path(cfg.output_dir).name}",
        "",
        f"A {cfg.method} fine-tune of `{cfg.model.name}` for medical reasoning, made with medtune{_stages(cfg)}.",
        "Educational and research use only: not a medical device, and no substitute for a clinician.",
        "",
        *details(cfg, info, f"`{cfg.data.train_file}`", f"this is the `{weights}/` kept"),
    ]
    plots = ["![loss](plots/loss.png)"] + (["![rewards](plots/rewards.png)"] if cfg.training.stage == "grpo" else [])
    lines += ["", *plots, "", "## Use", "", "```bash", _usage(cfg, weights), "```", ""]
    return "\n".join(lines)


def details(cfg: Config, info: dict, source: str, kept: str) -> list[str]:
    """The card's Data, Training and Results sections; `source` names the data and `kept` what the best step's
    weights became (the Hub card names neither by a path of this machine)."""
    rows = "\n".join(f"| {name} | {get(cfg)} |" for name, get in HYPERPARAMETERS)
    if cfg.method != "full":
        rows += f"\n| adapted modules | {', '.join(info.get('target_modules', []))} |"
    best = info.get("best") or {}
    lines = [
        "## Data",
        "",
        f"- source: {source} ({info.get('data', {}).get('train_examples', '?')} training and "
        f"{info.get('data', {}).get('valid_examples', '?')} validation examples after preparation)",
        f"- loss on the assistant turn only: {'no' if cfg.training.train_on_prompt else 'yes'}",
        f"- data hash: `{info.get('data_hash', '')}`",
        "",
        "## Training",
        "",
        "| setting | value |",
        "|---|---|",
        rows,
        "",
        "## Results",
        "",
        f"- steps: {info.get('global_step')} ({info.get('status')})",
        f"- final train loss: {_fmt(info.get('final_train_loss'))}",
        f"- validation loss before training: {_fmt(info.get('start_val_loss'))}",
        f"- final validation loss: {_fmt(info.get('final_val_loss'))}",
    ]
    if cfg.training.stage == "grpo":
        lines += [f"- final train reward: {_fmt(info.get('final_train_reward'))}",
                  f"- validation reward before training: {_fmt(info.get('start_val_reward'))}",
                  f"- final validation reward: {_fmt(info.get('final_val_reward'))}"]
    if best:
        label = "val_reward" if "val_reward" in best else "val_loss"
        lines.append(f"- best validation {label[4:]}: {_fmt(best.get(label))} at step {best.get('step')}"
                     + (f" ({kept})" if info.get("weights_from_best") else ""))
    return lines


def _stages(cfg: Config) -> str:
    """How the weights came to be: one SFT stage, or GRPO on verifiable problems (after an SFT run)."""
    if cfg.training.stage != "grpo":
        return ""
    rewards = ", ".join(f"{name} x {weight:g}" for name, weight in cfg.rl.rewards.items())
    after = f" after the SFT run `{cfg.rl.init_from}`" if cfg.rl.init_from else ""
    return f": GRPO with verifiable rewards ({rewards}){after}"


def _usage(cfg: Config, weights: str) -> str:
    run = cfg.output_dir
    if cfg.method == "full":
        return f"medtune generate --model {run}/{weights} \"A 45-year-old presents with ...\""
    line = f"medtune generate --run {run} \"A 45-year-old presents with ...\""
    if gguf_file(cfg.model.name) is not None:  # a GGUF base: plain transformers needs medtune's converted folder
        return line
    return (f"{line}\n# or: PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(\"{cfg.model.name}\"), "
            f"\"{run}/{weights}\")")


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
