"""What an evaluation leaves behind: results.json, items.jsonl, report.md and PNG plots.

results.json  {created, medtune, config, mode, mcq_format, seed, judge, systems: {label: {model, adapter, name,
              load_s, warm_up_s (screen mode: layers, threshold instead), tasks: {task: {kind, origin, seconds,
              items_per_s, metrics}}}}, paired: {task: tuned-minus-base}}
items.jsonl   one line per system and item: id, prompt, reasoning, answer, prediction, gold, correct, scores;
              safety items add label, category, refused, decided_by, reason (safety_records.py)
Safety tasks' lines and tables are in safety_report.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from medtune.evaluation import safety_report
from medtune.evaluation.judge import CRITERIA


def write_outputs(out: Path, results: dict, records: list[dict]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    with (out / "items.jsonl").open("w", encoding="utf-8") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    plots = write_plots(out / "plots", results, records)
    (out / "report.md").write_text(markdown(results, plots, out), encoding="utf-8")
    return [out / "results.json", out / "items.jsonl", out / "report.md", *plots]


def summary_lines(results: dict, out: Path) -> list[str]:
    """What the console shows: one line per system and task, then the paired differences."""
    lines = []
    for label, info in results["systems"].items():
        for name, task in info["tasks"].items():
            m = task["metrics"]
            if task["kind"] == "safety":
                lines.append(safety_report.summary_line(label, name, task, results["mode"] == "screen"))
                continue
            if task["kind"] == "mcq":
                extra = f", acc_norm {m['acc_norm']:.4f}" if "acc_norm" in m else f", unparseable {m['unparseable']}"
                extra += f", too long {m['too_long']}" if m.get("too_long") else ""
                extra += f", refused by the safety layer {m['safety_replaced']}" if m.get("safety_replaced") else ""
                line = f"accuracy {m['accuracy']:.4f} [{m['ci95'][0]:.4f}, {m['ci95'][1]:.4f}]{extra}"
            else:
                sim = m.get("similarity", {})
                line = f"similarity mean {sim.get('mean', float('nan')):.4f}" + (
                    f", judge correctness {m['judge'].get('correctness', float('nan')):.2f}" if "judge" in m else "")
            line += _format_part(m)
            lines.append(f"{label:<6} {name:<14} {m['items']:>5} items  {line}  ({task['items_per_s']:.2f} items/s)")
    for name, p in results["paired"].items():
        for metric in ("accuracy", "similarity"):
            if metric in p:
                a = p[metric]
                test = f", McNemar p {a['p_value']:.4g}" if "p_value" in a else ""
                lines.append(f"tuned - base {name} {metric}: {a['delta']:+.4f} [{a['ci95'][0]:+.4f}, "
                             f"{a['ci95'][1]:+.4f}], wins/ties/losses {a['wins']}/{a['ties']}/{a['losses']}{test}")
    lines += safety_report.paired_lines(results)
    lines.append(f"results: {out / 'results.json'}, {out / 'report.md'}")
    return lines


def _format_part(m: dict) -> str:
    """', format ok 7/8 (reasoning 412 tokens, 1 cut at max_tokens)' for generated answers."""
    if "format_ok" not in m:
        return ""
    cut = f", {m['truncated']} cut at max_tokens" if m.get("truncated") else ""
    return (f", format ok {m['format_ok']}/{m['generated']} (reasoning {m['mean_reasoning_tokens']:.0f} "
            f"tokens{cut})")


# ---------------------------------------------------------------- report.md


def markdown(results: dict, plots: list[Path], out: Path) -> str:
    lines = [f"# medtune eval ({_how(results)}, seed {results['seed']})", ""]
    for label, system in results["systems"].items():
        adapter = f" + adapter `{system['adapter']}`" if system.get("adapter") else ""
        lines.append(f"- **{label}**: `{system['model'] or system['name']}`{adapter}")
    lines += ["", *mcq_table(results), *open_table(results), *safety_report.tables(results), *paired_table(results)]
    lines += [f"![{p.stem}]({p.relative_to(out).as_posix()})" for p in plots]
    return "\n".join(lines) + "\n"


GENERATED_KINDS = {"open": "open-ended", "safety": "safety"}  # tasks generated whatever the mode


def _how(results: dict) -> str:
    """The mode names how multiple choice was scored; open-ended answers are always generated."""
    kinds = {t["kind"] for s in results["systems"].values() for t in s["tasks"].values()}
    if results["mode"] == "screen":
        return "screen mode: the safety layer alone"
    generated = [f"{words} answers generated" for kind, words in GENERATED_KINDS.items() if kind in kinds]
    return ", ".join(([f"{results['mode']} mode"] if "mcq" in kinds else []) + generated)


def mcq_table(results: dict) -> list[str]:
    rows = [(label, task, t) for label, s in results["systems"].items() for task, t in s["tasks"].items()
            if t["kind"] == "mcq"]
    if not rows:
        return []
    out = ["## Multiple choice", "",
           "| system | task | items | accuracy | 95% CI | acc_norm | unparseable | too long | safety refused | "
           "format ok | reasoning tokens | items/s |", "|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|"]
    for label, task, t in rows:
        m = t["metrics"]
        out.append(f"| {label} | {task} | {m['items']} | {m['accuracy']:.4f} | {_ci(m['ci95'])} | "
                   f"{_num(m.get('acc_norm'))} | {m.get('unparseable', '-')} | {m.get('too_long', '-')} | "
                   f"{m.get('safety_replaced', '-')} | "
                   f"{_pct(m.get('format_compliance'))} | "
                   f"{_num(m.get('mean_reasoning_tokens'), 1)} | {t['items_per_s']:.2f} |")
    return [*out, ""]


def open_table(results: dict) -> list[str]:
    rows = [(label, task, t) for label, s in results["systems"].items() for task, t in s["tasks"].items()
            if t["kind"] == "open"]
    if not rows:
        return []
    judged = any("judge" in t["metrics"] for _, _, t in rows)
    head = "| system | task | items | similarity mean | median | good (>=0.7) | poor (<=0.3) | too long | format ok |"
    rule = "|---|---|---:|---:|---:|---:|---:|---:|---:|"
    if judged:
        head += " judged | failed | " + " | ".join(CRITERIA) + " |"
        rule += "---:|---:|" + "---:|" * len(CRITERIA)
    out = ["## Open-ended answers", "", head, rule]
    for label, task, t in rows:
        m, s = t["metrics"], t["metrics"].get("similarity", {})
        row = (f"| {label} | {task} | {m['items']} | {_num(s.get('mean'))} | {_num(s.get('median'))} | "
               f"{_pct(s.get('good_share'))} | {_pct(s.get('poor_share'))} | {m.get('too_long', '-')} | "
               f"{_pct(m.get('format_compliance'))} |")
        if judged:
            j = m.get("judge", {})
            row += f" {j.get('judged', '-')} | {j.get('failed', '-')} | "
            row += " | ".join(_num(j.get(c), 2) for c in CRITERIA) + " |"
        out.append(row)
    return [*out, ""]


def paired_table(results: dict) -> list[str]:
    paired = results.get("paired") or {}
    if not paired:
        return []
    out = ["## Tuned versus base (paired, same items)", "",
           "| task | items | metric | delta (tuned - base) | 95% CI (bootstrap) | wins / ties / losses | McNemar p |",
           "|---|---:|---|---:|---|---|---:|"]
    for task, p in paired.items():
        for metric in ("accuracy", "similarity"):
            if metric in p:
                d = p[metric]
                out.append(f"| {task} | {p['items']} | {metric} | {d['delta']:+.4f} | {_ci(d['ci95'])} | "
                           f"{d['wins']} / {d['ties']} / {d['losses']} | {_num(d.get('p_value'))} |")
        for criterion, d in (p.get("judge") or {}).items():
            out.append(f"| {task} | {d['n']} | judge {criterion} | {d['delta']:+.3f} | {_ci(d['ci95'])} | | |")
    return [*out, ""]


def _ci(ci) -> str:
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def _num(value, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


# ---------------------------------------------------------------- plots


def write_plots(folder: Path, results: dict, records: list[dict]) -> list[Path]:
    """accuracy per task (with 95% intervals), similarity histogram, and base vs tuned deltas."""
    folder.mkdir(parents=True, exist_ok=True)
    made = [_accuracy_plot(folder / "accuracy.png", results), _similarity_plot(folder / "similarity.png", records),
            _paired_plot(folder / "base_vs_tuned.png", results)]
    return [p for p in made if p is not None]


def _figure(width: float = 7.0, height: float = 4.0):
    from matplotlib.figure import Figure  # no pyplot: no global state, no display backend

    fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _accuracy_plot(path: Path, results: dict) -> Path | None:
    systems = {label: {t: v["metrics"] for t, v in s["tasks"].items() if v["kind"] == "mcq"}
               for label, s in results["systems"].items()}
    tasks = sorted({t for per in systems.values() for t in per})
    if not tasks:
        return None
    fig, ax = _figure()
    width = 0.8 / len(systems)
    for k, (label, per) in enumerate(systems.items()):
        present = [t for t in tasks if t in per]
        xs = [tasks.index(t) + k * width for t in present]
        acc = [per[t]["accuracy"] for t in present]
        err = [[max(0.0, a - per[t]["ci95"][0]) for a, t in zip(acc, present)],
               [max(0.0, per[t]["ci95"][1] - a) for a, t in zip(acc, present)]]
        ax.bar(xs, acc, width, yerr=err, capsize=3, label=label)
    ax.set_xticks([i + width * (len(systems) - 1) / 2 for i in range(len(tasks))], tasks)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy (95% CI)")
    ax.set_title("Accuracy per task")
    ax.legend()
    fig.savefig(path, dpi=120)
    return path


def _similarity_plot(path: Path, records: list[dict]) -> Path | None:
    by_system: dict[str, list[float]] = {}
    for r in records:
        score = (r.get("scores") or {}).get("similarity")
        if score is not None:
            by_system.setdefault(r["system"], []).append(score)
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


def _paired_plot(path: Path, results: dict) -> Path | None:
    rows = [(f"{task} {metric}", p[metric]) for task, p in (results.get("paired") or {}).items()
            for metric in ("accuracy", "similarity") if metric in p]
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
