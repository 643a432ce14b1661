"""The comparison's PNG plots (matplotlib, Agg canvas: files only, no display): the loss curves of every run
overlaid, accuracy per task with Wilson 95% intervals, training speed and memory with generation speed, and the
judge's scores when there are any. A plot with nothing to show is not made."""

from __future__ import annotations

from pathlib import Path

from medtune.evaluation.judge import CRITERIA


def write_plots(folder: Path, results: dict, curves: dict[str, dict]) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    made = [losses(folder / "losses.png", curves), accuracy(folder / "accuracy.png", results),
            speed_memory(folder / "speed_memory.png", results), judge(folder / "judge.png", results)]
    return [p for p in made if p is not None]


def _figure(panels: int = 1, width: float = 7.0, height: float = 4.0):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, panels, i + 1) for i in range(panels)]


def _save(fig, path: Path) -> Path:
    fig.savefig(path, dpi=120)
    return path


def losses(path: Path, curves: dict[str, dict]) -> Path | None:
    """Train loss as a line and validation loss as points, one colour per run."""
    shown = {label: c for label, c in curves.items() if c["train"] or c["val"]}
    if not shown:
        return None
    fig, (ax,) = _figure()
    for k, (label, c) in enumerate(shown.items()):
        colour = f"C{k % 10}"
        if c["train"]:
            ax.plot(*zip(*c["train"]), "o-" if len(c["train"]) == 1 else "-", color=colour, linewidth=1.2,
                    label=f"{label} train")  # a one-point curve is a marker, or nothing shows
        if c["val"]:
            ax.plot(*zip(*c["val"]), "o--", color=colour, markersize=4, linewidth=1, label=f"{label} validation")
    ax.set(xlabel="step", ylabel="loss (per token, each model's tokenizer)", title="Training and validation loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def _grouped_bars(ax, groups: list[str], values: dict[str, list], errors: dict[str, list] | None = None) -> None:
    """One group of bars per entry of `groups`, one bar per system; None values leave a gap."""
    width = 0.8 / max(1, len(values))
    for k, (label, ys) in enumerate(values.items()):
        xs = [i + k * width for i, y in enumerate(ys) if y is not None]
        shown = [y for y in ys if y is not None]
        err = None
        if errors:
            err = [[e[0] for e, y in zip(errors[label], ys) if y is not None],
                   [e[1] for e, y in zip(errors[label], ys) if y is not None]]
        ax.bar(xs, shown, width, yerr=err, capsize=3 if err else 0, label=label)
    ax.set_xticks([i + width * (len(values) - 1) / 2 for i in range(len(groups))], groups)
    ax.legend(fontsize=8)


def accuracy(path: Path, results: dict) -> Path | None:
    """Every task whose summary has an accuracy (multiple choice), per system, with its Wilson interval."""
    tasks = [t for t in results["tasks"] if any(hasattr(per[t].summary, "accuracy")
                                                for per in results["systems"].values() if t in per)]
    if not tasks:
        return None
    values, errors = {}, {}
    for label, per in results["systems"].items():
        ms = [per[t].summary if t in per else None for t in tasks]
        values[label] = [m.accuracy if m else None for m in ms]
        errors[label] = [(m.accuracy - m.ci95[0], m.ci95[1] - m.accuracy) if m else (0, 0) for m in ms]
    fig, (ax,) = _figure()
    _grouped_bars(ax, tasks, values, errors)
    ax.set(ylim=(0, 1), ylabel="accuracy (Wilson 95% CI)", title="Multiple-choice accuracy, same items")
    return _save(fig, path)


def speed_memory(path: Path, results: dict) -> Path | None:
    """Bars per system: training tokens/s, training peak memory, generation tokens/s (over all generated tasks)."""
    labels = list(results["systems"])
    panels = {"training tokens/s": [_training(results, lb, "tokens_per_s") for lb in labels],
              "training peak memory (MB)": [_training(results, lb, "peak_mem_mb") for lb in labels],
              "generation tokens/s": [generation_speed(results["systems"][lb]) for lb in labels]}
    panels = {title: ys for title, ys in panels.items() if any(y is not None for y in ys)}
    if not panels:
        return None
    fig, axes = _figure(len(panels), 3.2 * len(panels) + 1, 3.6)
    for ax, (title, ys) in zip(axes, panels.items()):
        ax.bar(range(len(labels)), [y or 0 for y in ys], color=[f"C{k % 10}" for k in range(len(labels))])
        ax.set_xticks(range(len(labels)), labels, rotation=20, ha="right", fontsize=8)
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def _training(results: dict, label: str, key: str):
    return (results["inputs"][label].get("training") or {}).get(key)


def generation_speed(per_task: dict) -> float | None:
    """Generated tokens over the seconds of the tasks that generated them, all tasks together."""
    ran = [m for m in per_task.values() if m.speed.get("generation_tokens_per_s")]
    if not ran:
        return None
    return sum(m.speed["generated_tokens"] for m in ran) / max(sum(m.seconds for m in ran), 1e-9)


def judge(path: Path, results: dict) -> Path | None:
    """The judge's mean score per criterion, for every task a judge graded."""
    graded = {t for t in results["tasks"] for per in results["systems"].values()
              if t in per and getattr(per[t].summary, "judge", None)}
    groups = [(t, c) for t in results["tasks"] if t in graded for c in CRITERIA]
    if not groups:
        return None
    values = {label: [(getattr(per[t].summary, "judge", None) or {}).get(c) if t in per else None for t, c in groups]
              for label, per in results["systems"].items()}
    fig, (ax,) = _figure(1, max(7.0, 1.4 * len(groups)), 4.0)
    _grouped_bars(ax, [f"{t}\n{c}" for t, c in groups], values)
    ax.set(ylim=(0, 5.2), ylabel="mean judge score (1-5)", title="Judge scores, same items")
    return _save(fig, path)
