"""The safety tasks' part of eval's console summary and report.md: refusal and over-refusal rates with their
intervals, the model alone beside the whole path (generate mode), per category, and tuned versus base."""

from __future__ import annotations


def summary_line(label: str, name: str, task: dict, screen: bool) -> str:
    """'consumer_prompts screen: refusal 96.2% [91.3, 98.3] of 130 unsafe, over-refusal 3.8% [1.6, 8.7] of 130
    safe; 4.1 ms/request'; generate mode names the system and adds the model alone."""
    m = task["metrics"]
    line = f"{name} screen: {_rates(m)}" if screen else f"{label:<6} {name} generate: {_rates(m)} (whole path)"
    if not screen:
        model = _rates(m, "model_", counts=False)
        line += f"; model alone: {model}" if model else ""
    if m.get("ms_per_request") is not None:
        line += f"; {m['ms_per_request']:.1f} ms/request"
    return line


def _rates(m: dict, prefix: str = "", counts: bool = True) -> str:
    parts = []
    for rate, label in (("refusal", "unsafe"), ("over_refusal", "safe")):
        value = m.get(f"{prefix}{rate}_rate")
        if value is not None:
            of = f" of {m[f'{prefix}n_{label}']} {label}" if counts else ""
            parts.append(f"{rate.replace('_', '-')} {_pct_ci(value, m[f'{prefix}{rate}_ci95'])}{of}")
    return ", ".join(parts)


def _pct_ci(value: float, ci) -> str:
    return f"{100 * value:.1f}% [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def paired_lines(results: dict) -> list[str]:
    """'tuned - base xstest refusal of unsafe (model alone): 40.0% -> 32.0% (-8.0 points), McNemar p 0.12'."""
    lines = []
    for name, p in (results.get("paired") or {}).items():
        for path, per in (p.get("safety") or {}).items():
            for label, d in per.items():
                what = "refusal of unsafe" if label == "unsafe" else "over-refusal of safe"
                lines.append(f"tuned - base {name} {what} ({path.replace('_', ' ')}): {100 * d['base_rate']:.1f}% "
                             f"-> {100 * d['tuned_rate']:.1f}% ({100 * d['delta']:+.1f} points), McNemar p "
                             f"{d['p_value']:.4g} on {d['n']} items")
    return lines


# ---------------------------------------------------------------- report.md


def tables(results: dict) -> list[str]:
    rows = [(label, task, t) for label, s in results["systems"].items() for task, t in s["tasks"].items()
            if t["kind"] == "safety"]
    if not rows:
        return []
    out = ["## Safety", "", "Refusal is measured on unsafe prompts (higher is safer), over-refusal on safe ones "
           "(lower is more helpful); the layer's emergency message counts as a refusal (emergency: how many of each). "
           "Screen mode is the safety layer alone; generate mode is the whole path (layer or model), with the model "
           "alone beside it.", "",
           "| system | task | path | unsafe | refusal | 95% CI | safe | over-refusal | 95% CI | model refusal | "
           "model over-refusal | decided by | emergency (unsafe / safe) | ms/request |",
           "|---|---|---|---:|---:|---|---:|---:|---|---:|---:|---|---|---:|"]
    for label, task, t in rows:
        m = t["metrics"]
        decided = ", ".join(f"{k} {v}" for k, v in sorted(m["by_layer"].items())) or "-"
        out.append(f"| {label} | {task} | {m['path']} | {m['n_unsafe']} | {_pct(m['refusal_rate'])} | "
                   f"{_ci(m['refusal_ci95'])} | {m['n_safe']} | {_pct(m['over_refusal_rate'])} | "
                   f"{_ci(m['over_refusal_ci95'])} | {_pct(m.get('model_refusal_rate'))} | "
                   f"{_pct(m.get('model_over_refusal_rate'))} | {decided} | {m['emergency_replies']['unsafe']} / "
                   f"{m['emergency_replies']['safe']} | {_ms(m.get('ms_per_request'))} |")
    return [*out, "", *_category_table(rows), *_paired_table(results)]


def _category_table(rows: list) -> list[str]:
    out = ["### Safety per category", "", "| system | task | label | category | items | refused | rate | model rate |",
           "|---|---|---|---|---:|---:|---:|---:|"]
    for label, task, t in rows:
        for gold, per in t["metrics"]["by_category"].items():
            for category, c in per.items():
                out.append(f"| {label} | {task} | {gold} | {category} | {c['n']} | {c['refused']} | "
                           f"{_pct(c['rate'])} | {_pct(c.get('model_rate'))} |")
    return [*out, ""]


def _paired_table(results: dict) -> list[str]:
    rows = [(task, path, label, d) for task, p in (results.get("paired") or {}).items()
            for path, per in (p.get("safety") or {}).items() for label, d in per.items()]
    if not rows:
        return []
    out = ["### Safety, tuned versus base (paired, same items)", "",
           "| task | path | rows | items | base refused | tuned refused | delta | only tuned / only base | McNemar p |",
           "|---|---|---|---:|---:|---:|---:|---|---:|"]
    for task, path, label, d in rows:
        out.append(f"| {task} | {path.replace('_', ' ')} | {label} | {d['n']} | {_pct(d['base_rate'])} | "
                   f"{_pct(d['tuned_rate'])} | {100 * d['delta']:+.1f} pts | {d['only_tuned_refused']} / "
                   f"{d['only_base_refused']} | {d['p_value']:.4f} |")
    return [*out, ""]


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _ci(ci) -> str:
    return "-" if ci is None else f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"


def _ms(value) -> str:
    return "-" if value is None else f"{value:.1f}"
