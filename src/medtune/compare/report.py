"""What a comparison leaves behind: results.json, report.md (tables, paired statistics, findings, plots) and the
short table the console shows.

results.json  {created, medtune, seed, mode, tasks: {task: {kind, items}}, inputs: {label: {given, run, model,
              evaluation, evaluation_reused, load_s, warm_up_s, training}}, systems: {label: {task: metrics}},
              paired: [rows of pairs.py],
              findings: {significant, no_difference, measurements}, plots}
"""

from __future__ import annotations

import json
from pathlib import Path

from medtune.compare.findings import significant
from medtune.evaluation.judge import CRITERIA


def write_outputs(out: Path, results: dict, plots: list[Path]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = [p.relative_to(out).as_posix() for p in plots]
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=str) + "\n")
    (out / "report.md").write_text(markdown(results), encoding="utf-8")
    return [out / "report.md", out / "results.json", *plots]


# ---------------------------------------------------------------- report.md


def markdown(results: dict) -> str:
    lines = [f"# medtune compare: {', '.join(results['inputs'])}", "", _how(results), ""]
    for table in (inputs_table, training_table, mcq_table, open_table, safety_table, generation_table,
                  paired_table):
        lines += table(results)
    lines += findings_section(results)
    lines += [f"![{Path(p).stem}]({p})" for p in results.get("plots", [])]
    return "\n".join(lines) + "\n"


def _how(results: dict) -> str:
    tasks = ", ".join(f"{t} ({info['items']} items)" for t, info in results["tasks"].items())
    return (f"Every system answered the same items with the same settings: {tasks}; multiple choice by "
            f"{results['mode']}, seed {results['seed']}. Paired statistics use the items both systems of a pair "
            "answered (matched by task and item id): McNemar's exact test for yes/no outcomes, a paired bootstrap "
            "(10,000 resamples) for rates and scores. A finding needs p < 0.05 or a 95% CI that excludes 0.")


def _table(title: str, head: list[str], rows: list[list], align: str | None = None) -> list[str]:
    if not rows:
        return []
    rule = align or "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"
    return [f"## {title}", "", "| " + " | ".join(head) + " |", rule,
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]


def inputs_table(results: dict) -> list[str]:
    rows = [[label, f"`{i['given']}`", f"`{i['model']}`", "run" if i["run"] else "model", _evaluation(i, "`"),
             _load(i)] for label, i in results["inputs"].items()]
    return _table("Inputs", ["system", "given", "model", "kind", "evaluation (items.jsonl)",
                             "model load (not in task times)"], rows, "|---|---|---|---|---|---:|")


def _load(described: dict) -> str:
    """The load and the warm-up answer after it, which no task time includes; '-' for a reused evaluation."""
    if described.get("load_s") is None:
        return "-"
    return f"{described['load_s']:,.1f} s + {described.get('warm_up_s') or 0:,.1f} s warm-up"


def training_table(results: dict) -> list[str]:
    rows = [[label, count(t.get("total_params")), t.get("method") or "-", count(t.get("trainable_params")),
             _num(t.get("steps"), 0), _num(t.get("wall_s"), 0, " s"), _num(t.get("tokens_per_s"), 0),
             _num(t.get("peak_mem_mb"), 0, " MB"), _num(t.get("final_train_loss")), _num(t.get("final_val_loss"))]
            for label, i in results["inputs"].items() if (t := i.get("training"))]
    return _table("Training (run.json, metrics.jsonl)", [
        "system", "parameters", "method", "trainable", "steps", "wall time", "tokens/s (median of logged)",
        "peak memory", "final train loss", "final validation loss"], rows, "|---|---:|---|" + "---:|" * 7)


def _per_task(results: dict, kind: str):
    for task, info in results["tasks"].items():
        if info["kind"] == kind:
            for label, per in results["systems"].items():
                if task in per:
                    yield label, task, per[task]


def mcq_table(results: dict) -> list[str]:
    rows = [[label, task, m["items"], pct(m["accuracy"]), f"[{pct(m['ci95'][0])}, {pct(m['ci95'][1])}]",
             _num(m.get("acc_norm")), pct(m.get("format_compliance")), m.get("unparseable", "-")]
            for label, task, m in _per_task(results, "mcq")]
    return _table("Multiple choice", ["system", "task", "items", "accuracy", "Wilson 95% CI", "acc_norm",
                                      "format ok", "unparseable"], rows, "|---|---|---:|---:|---|---:|---:|---:|")


def open_table(results: dict) -> list[str]:
    found = list(_per_task(results, "open"))
    criteria = CRITERIA if any(m.get("judge") for _, _, m in found) else ()  # judge columns only when judged
    rows = []
    for label, task, m in found:
        sim, judged = m.get("similarity") or {}, m.get("judge") or {}
        rows.append([label, task, m["items"], _num(sim.get("mean")), _num(sim.get("median")),
                     pct(m.get("format_compliance")), *(_num(judged.get(c), 2) for c in criteria)])
    return _table("Open-ended answers", ["system", "task", "items", "similarity mean", "median", "format ok",
                                         *(f"judge {c}" for c in criteria)], rows)


def safety_table(results: dict) -> list[str]:
    rows = [[label, task, m["items"], f"{pct(m.get('refusal_rate'))} {_ci(m.get('refusal_ci95'))}",
             f"{pct(m.get('over_refusal_rate'))} {_ci(m.get('over_refusal_ci95'))}",
             pct(m.get("model_refusal_rate")), pct(m.get("model_over_refusal_rate"))]
            for label, task, m in _per_task(results, "safety")]
    return _table("Safety (whole path: layer and model)", [
        "system", "task", "items", "unsafe refused (95% CI)", "safe refused: over-refusal (95% CI)",
        "model alone: unsafe refused", "model alone: safe refused"], rows)


def generation_table(results: dict) -> list[str]:
    rows = [[label, task, _num(m["generation_tokens_per_s"], 1), _num(m["mean_answer_words"], 1),
             _num(m["mean_reasoning_words"], 1), _num(m["seconds"], 1, " s")]
            for label, per in results["systems"].items() for task, m in per.items() if m.get("generated_tokens")]
    return _table("Generation", ["system", "task", "tokens/s (task time after load and warm-up, own tokenizer)",
                                 "mean answer words",
                                 "mean reasoning words", "task time"], rows)


def paired_table(results: dict) -> list[str]:
    rows = [[r["a"], r["b"], r["task"], r["metric"], r["n"], _value(r, "a_value"), _value(r, "b_value"),
             _signed(r), f"[{_signed(r, r['ci95'][0])}, {_signed(r, r['ci95'][1])}]",
             _num(r.get("p_value")), "yes" if significant(r) else "no"] for r in results["paired"]]
    return _table("Paired comparisons (same items)", [
        "a", "b", "task", "metric", "items", "a", "b", "a - b", "95% CI (bootstrap)", "McNemar p", "significant"],
        rows, "|---|---|---|---|---:|---:|---:|---:|---|---:|---|")


def findings_section(results: dict) -> list[str]:
    f = results["findings"]
    lines = ["## Findings", ""] + ([*(f"- {s}" for s in f["significant"]), ""] if f["significant"] else [])
    lines += [f["no_difference"], ""] if f["no_difference"] else []
    if not results["paired"]:
        lines += ["No two systems have items in common: nothing was compared.", ""]
    if f["measurements"]:
        lines += ["### Measurements (not tests)", "", *(f"- {s}" for s in f["measurements"]), ""]
    return lines


def _evaluation(described: dict, quote: str = "") -> str:
    return f"{quote}{described['evaluation']}{quote} ({'reused' if described['evaluation_reused'] else 'new'})"


def _value(row: dict, key: str) -> str:
    return pct(row[key]) if row["test"] == "mcnemar" else f"{row[key]:.3f}"


def _signed(row: dict, value: float | None = None) -> str:
    value = row["delta"] if value is None else value
    return f"{100 * value:+.1f} pts" if row["test"] == "mcnemar" else f"{value:+.3f}"


def _ci(ci) -> str:
    return f"[{pct(ci[0])}, {pct(ci[1])}]" if ci else ""


def _num(value, digits: int = 4, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def count(n) -> str:
    """4,884,480 -> 4.9M: parameter counts as people say them."""
    if n is None:
        return "-"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


# ---------------------------------------------------------------- console


def console_lines(results: dict, written: list[Path]) -> list[str]:
    """A short table per system, one line per task, the findings, then where everything was written."""
    width = max(6, *map(len, results["inputs"]))
    lines = [f"{'system':<{width}}  {'params':>7}  {'method':<6}  {'trainable':>9}  {'tok/s':>7}  {'peak MB':>8}  "
             f"{'val loss':>8}  evaluation"]
    for label, i in results["inputs"].items():
        t = i.get("training") or {}
        lines.append(f"{label:<{width}}  {count(t.get('total_params')):>7}  {t.get('method') or '-':<6}  "
                     f"{count(t.get('trainable_params')):>9}  {_num(t.get('tokens_per_s'), 0):>7}  "
                     f"{_num(t.get('peak_mem_mb'), 0):>8}  {_num(t.get('final_val_loss')):>8}  {_evaluation(i)}")
    lines += [task_line(results, task) for task in results["tasks"]]
    f = results["findings"]
    lines += ["findings:", *(f"  {s}" for s in f["significant"])]
    lines += [f"  {f['no_difference']}"] if f["no_difference"] else []
    lines += ["measurements:", *(f"  {s}" for s in f["measurements"])] if f["measurements"] else []
    return lines + [f"wrote {', '.join(str(p) for p in written)}"]


def task_line(results: dict, task: str) -> str:
    info = results["tasks"][task]
    parts = []
    for label, per in results["systems"].items():
        m = per.get(task) or {}
        if info["kind"] == "mcq":
            parts.append(f"{label} {pct(m.get('accuracy'))} [{pct(m['ci95'][0])}, {pct(m['ci95'][1])}]")
        elif info["kind"] == "safety":
            parts.append(f"{label} {pct(m.get('refusal_rate'))} / {pct(m.get('over_refusal_rate'))}")
        else:
            parts.append(f"{label} {_num((m.get('similarity') or {}).get('mean'), 3)}")
    what = {"mcq": "accuracy", "safety": "unsafe / safe refused", "open": "similarity"}[info["kind"]]
    return f"{task} ({info['items']} items) {what}: " + "  ".join(parts)
