"""What an evaluation leaves behind: results.json (results.py), items.jsonl (records.py), report.md and PNG plots,
and the lines the console shows. Each task kind's summary shows its own figures (its table row, its console line);
this module lays them out."""

from __future__ import annotations

from pathlib import Path

from medtune.evaluation.formatting import ci, num, table
from medtune.evaluation.records import ItemRecord, write_items
from medtune.evaluation.results import EvalResults, write_results
from medtune.evaluation.tasks import KINDS

PAIRED_METRICS = ("accuracy", "similarity")  # the paired figures with a bootstrap interval and wins/ties/losses


def write_outputs(out: Path, results: EvalResults, records: list[ItemRecord]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    write_results(out / "results.json", results)
    write_items(out / "items.jsonl", records)
    plots = write_plots(out / "plots", results, records)
    (out / "report.md").write_text(markdown(results, plots, out), encoding="utf-8")
    return [out / "results.json", out / "items.jsonl", out / "report.md", *plots]


def summary_lines(results: EvalResults, out: Path) -> list[str]:
    """What the console shows: one line per system and task, then the paired differences."""
    lines = [t.metrics.console(label, name, t.items_per_s, results.mode)
             for label, system in results.systems.items() for name, t in system.tasks.items()]
    kinds = results.kinds()
    for name, p in results.paired.items():
        for metric in PAIRED_METRICS:
            if metric in p:
                a = p[metric]
                test = f", McNemar p {a['p_value']:.4g}" if "p_value" in a else ""
                lines.append(f"tuned - base {name} {metric}: {a['delta']:+.4f} [{a['ci95'][0]:+.4f}, "
                             f"{a['ci95'][1]:+.4f}], wins/ties/losses {a['wins']}/{a['ties']}/{a['losses']}{test}")
        lines += KINDS[kinds[name]].paired_lines(name, p)
    engines = {s.engine_label for s in results.systems.values() if s.layers is None}
    if engines - {"transformers"}:  # each system's engine (and GGUF quantization) is part of its numbers
        lines.append("engine: " + ", ".join(f"{label} {s.engine_label}" for label, s in results.systems.items()))
    lines.append(f"results: {out / 'results.json'}, {out / 'report.md'}")
    return lines


# ---------------------------------------------------------------- report.md


def markdown(results: EvalResults, plots: list[Path], out: Path) -> str:
    lines = [f"# medtune eval ({_how(results)}, seed {results.seed})", ""]
    for label, system in results.systems.items():
        adapter = f" + adapter `{system.adapter}`" if system.adapter else ""
        engine = f" on {system.engine_label}" if system.layers is None and system.engine_label != "transformers" else ""
        lines.append(f"- **{label}**: `{system.model or system.name}`{adapter}{engine}")
    lines.append("")
    for kind in KINDS.values():
        lines += kind_tables(results, kind)
    lines += paired_table(results)
    lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plots]
    return "\n".join(lines) + "\n"


def kind_tables(results: EvalResults, kind) -> list[str]:
    """The kind's table (its summary's columns, one row per system and task) and any tables of its own."""
    rows = [(label, name, t) for label, s in results.systems.items() for name, t in s.tasks.items()
            if isinstance(t.metrics, kind.Summary)]
    if not rows:
        return []
    head = ["system", "task", *rows[0][2].metrics.columns(), "items/s"]
    body = [[label, name, *t.metrics.cells(), f"{t.items_per_s:.2f}"] for label, name, t in rows]
    note = getattr(kind.Summary, "NOTE", None)
    out = table(kind.Summary.TITLE, head, body)
    out = out[:2] + [note, ""] + out[2:] if note else out
    return out + kind.Summary.extra_tables([(label, name, t.metrics) for label, name, t in rows])


def _how(results: EvalResults) -> str:
    """The mode names how multiple choice was scored; the other kinds are always generated."""
    if results.mode == "screen":
        return "screen mode: the safety layer alone"
    kinds = set(results.kinds().values())
    generated = [f"{KINDS[k].answers} answers generated" for k in KINDS if k in kinds and KINDS[k].answers]
    return ", ".join(([f"{results.mode} mode"] if any(not KINDS[k].answers for k in kinds) else []) + generated)


def paired_table(results: EvalResults) -> list[str]:
    rows = []
    for task, p in results.paired.items():
        for metric in PAIRED_METRICS:
            if metric in p:
                d = p[metric]
                rows.append([task, p["items"], metric, f"{d['delta']:+.4f}", ci(d["ci95"]),
                             f"{d['wins']} / {d['ties']} / {d['losses']}", num(d.get("p_value"))])
        rows += [[task, d["n"], f"judge {criterion}", f"{d['delta']:+.3f}", ci(d["ci95"]), "", ""]
                 for criterion, d in (p.get("judge") or {}).items()]
    out = table("Tuned versus base (paired, same items)", [
        "task", "items", "metric", "delta (tuned - base)", "95% CI (bootstrap)", "wins / ties / losses", "McNemar p"],
        rows, "|---|---:|---|---:|---|---|---:|")
    kinds = results.kinds()
    for kind in KINDS.values():
        out += kind.paired_tables({t: p for t, p in results.paired.items() if kinds.get(t) == kind.kind})
    return out


# ---------------------------------------------------------------- plots


def write_plots(folder: Path, results: EvalResults, records: list[ItemRecord]) -> list[Path]:
    """accuracy per task (with 95% intervals), similarity histogram, and base vs tuned deltas."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [_accuracy_plot(folder / "accuracy.png", results), _similarity_plot(folder / "similarity.png", records),
            _paired_plot(folder / "base_vs_tuned.png", results)]
    return [p for p in made if p is not None]


def _figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _accuracy_plot(path: Path, results: EvalResults) -> Path | None:
    """Every task whose summary has an accuracy, per system, with its Wilson interval."""
    systems = {label: {t: v.metrics for t, v in s.tasks.items() if hasattr(v.metrics, "accuracy")}
               for label, s in results.systems.items()}
    tasks = sorted({t for per in systems.values() for t in per})
    if not tasks:
        return None
    fig, ax = _figure()
    width = 0.8 / len(systems)
    for k, (label, per) in enumerate(systems.items()):
        present = [t for t in tasks if t in per]
        xs = [tasks.index(t) + k * width for t in present]
        acc = [per[t].accuracy for t in present]
        err = [[max(0.0, a - per[t].ci95[0]) for a, t in zip(acc, present)],
               [max(0.0, per[t].ci95[1] - a) for a, t in zip(acc, present)]]
        ax.bar(xs, acc, width, yerr=err, capsize=3, label=label)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(tasks))], tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Accuracy per task")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def _similarity_plot(path: Path, records: list[ItemRecord]) -> Path | None:
    by_system: dict[str, list[float]] = {}
    for r in records:
        if r.scores.similarity is not None:
            by_system.setdefault(r.system, []).append(r.scores.similarity)
    if not by_system:
        return None
    fig, ax = _figure()
    for label, scores in by_system.items():
        ax.hist(scores, bins=20, range=similarity_range(by_system), alpha=0.6, label=label)
    for x in (0.3, 0.7):
        ax.axvline(x, color="grey", linestyle="--", linewidth=1)
    ax.set_xlabel("cosine similarity to the reference answer")
    ax.set_ylabel("answers")
    ax.set_title("Answer similarity")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def similarity_range(by_system: dict[str, list[float]]) -> tuple[float, float]:
    """[0, 1], reaching down to the lowest score: cosines go to -1, and hist drops what falls outside its range."""
    return min(0.0, *(min(scores) for scores in by_system.values())), 1.0


def _paired_plot(path: Path, results: EvalResults) -> Path | None:
    rows = [(f"{task} {metric}", p[metric]) for task, p in results.paired.items()
            for metric in PAIRED_METRICS if metric in p]
    if not rows:
        return None
    fig, ax = _figure(7.0, 1.2 + 0.5 * len(rows))
    for y, (_, d) in enumerate(rows):
        xerr = [[max(0.0, d["delta"] - d["ci95"][0])], [max(0.0, d["ci95"][1] - d["delta"])]]
        ax.errorbar(d["delta"], y, xerr=xerr, fmt="o",
                    capsize=4, color="tab:green" if d["ci95"][0] > 0 else "tab:red" if d["ci95"][1] < 0 else "grey")
    ax.axvline(0, color="black", linewidth=1)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_xlabel("tuned - base (95% paired bootstrap CI)")
    ax.set_title("Base versus tuned")
    fig.savefig(path, dpi=120)
    return path
