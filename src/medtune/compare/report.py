"""What a comparison leaves behind: results.json, report.md (tables, paired statistics, findings, plots) and the
short table the console shows.

results.json  {created, medtune, seed, mode, tasks: {task: {kind, items}}, inputs: {label: {given, run, model,
              evaluation, evaluation_reused, load_s, warm_up_s, engine, training}}, systems: {label: {task: metrics}},
              paired: [rows of pairs.py],
              findings: {significant, no_difference, measurements}, plots}
"""

from __future__ import annotations

import json
from pathlib import Path

from medtune.compare.findings import MIN_BOOTSTRAP_ITEMS, TEST_NAMES, p_text, significant, tests_made
from medtune.evaluation.tasks import KINDS


def write_outputs(out: Path, results: dict, plots: list[Path]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    results["plots"] = [p.relative_to(out).as_posix() for p in plots]
    (out / "results.json").write_text(json.dumps(results, indent=2, ensure_ascii=False, default=_jsonable) + "\n")
    (out / "report.md").write_text(markdown(results), encoding="utf-8")
    return [out / "report.md", out / "results.json", *plots]


# ---------------------------------------------------------------- report.md


def _jsonable(value):
    """The typed figures (evals.TaskFigures) as results.json holds them."""
    if hasattr(value, "to_json"):
        return value.to_json()
    return str(value)


def markdown(results: dict) -> str:
    lines = [f"# medtune compare: {', '.join(results['inputs'])}", "", _how(results), ""]
    for table in (inputs_table, training_table, kind_tables, generation_table, paired_table):
        lines += table(results)
    lines += findings_section(results)
    lines += [f"![{Path(p).stem}]({p})" for p in results.get("plots", [])]
    return "\n".join(lines) + "\n"


def _how(results: dict) -> str:
    tasks = ", ".join(f"{t} ({info['items']} items)" for t, info in results["tasks"].items())
    tested = tests_made(results["paired"])
    return (f"Every system answered the same items with the same settings: {tasks}; multiple choice by "
            f"{results['mode']}, seed {results['seed']}. Paired statistics use the items both systems of a pair "
            "answered (matched by task and item id): McNemar's exact test for yes/no outcomes, a sign-flip "
            "permutation test of the mean difference for scores, and a paired bootstrap (10,000 resamples) for the "
            "95% CI of every difference. A finding needs a Holm-adjusted p < 0.05, and for scores at least "
            f"{MIN_BOOTSTRAP_ITEMS} items" + (f"; {tested}." if tested else "."))


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


def kind_tables(results: dict) -> list[str]:
    """One table per task kind: each system's summary of each task of that kind, in the kind's own columns."""
    out = []
    for kind in KINDS.values():
        rows = [(label, task, per[task].summary) for task in results["tasks"] for label, per in
                results["systems"].items() if task in per and isinstance(per[task].summary, kind.Summary)]
        if rows:
            head = ["system", "task", *rows[0][2].columns()]
            out += _table(kind.Summary.TITLE, head, [[label, task, *s.cells()] for label, task, s in rows])
    return out


def generation_table(results: dict) -> list[str]:
    rows = [[label, task, _num(m.speed["generation_tokens_per_s"], 1), _num(m.speed["mean_answer_words"], 1),
             _num(m.speed["mean_reasoning_words"], 1), _num(m.seconds, 1, " s")]
            for label, per in results["systems"].items() for task, m in per.items() if m.speed]
    return _table("Generation", ["system", "task", "tokens/s (task time after load and warm-up, own tokenizer)",
                                 "mean answer words",
                                 "mean reasoning words", "task time"], rows)


def paired_table(results: dict) -> list[str]:
    rows = [[r["a"], r["b"], r["task"], r["metric"], r["n"], _value(r, "a_value"), _value(r, "b_value"),
             _signed(r), f"[{_signed(r, r['ci95'][0])}, {_signed(r, r['ci95'][1])}]",
             f"{p_text(r['p_value'])} ({TEST_NAMES[r['test']]})", p_text(r["p_adjusted"]),
             "yes" if significant(r) else "no"] for r in results["paired"]]
    return _table("Paired comparisons (same items)", [
        "a", "b", "task", "metric", "items", "a", "b", "a - b", "95% CI (bootstrap)", "p", "p (Holm)",
        "significant"], rows, "|---|---|---|---|---:|---:|---:|---:|---|---:|---:|---|")


def findings_section(results: dict) -> list[str]:
    f = results["findings"]
    lines = ["## Findings", ""]
    if tested := tests_made(results["paired"]):
        lines += [f"{tested}; a finding needs p (Holm) < 0.05.", ""]
    lines += [*(f"- {s}" for s in f["significant"]), ""] if f["significant"] else []
    lines += [f["no_difference"], ""] if f["no_difference"] else []
    if not results["paired"]:
        lines += ["No two systems have items in common: nothing was compared.", ""]
    if f["measurements"]:
        lines += ["### Measurements (not tests)", "", *(f"- {s}" for s in f["measurements"]), ""]
    return lines


def _evaluation(described: dict, quote: str = "") -> str:
    engine = described.get("engine", "transformers")
    on = f", {engine}" if engine != "transformers" else ""  # llama.cpp and its GGUF quantization, vllm
    return f"{quote}{described['evaluation']}{quote} ({'reused' if described['evaluation_reused'] else 'new'}{on})"


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
    tested = tests_made(results["paired"])
    lines += ["findings:", *([f"  {tested}"] if tested else []), *(f"  {s}" for s in f["significant"])]
    lines += [f"  {f['no_difference']}"] if f["no_difference"] else []
    lines += ["measurements:", *(f"  {s}" for s in f["measurements"])] if f["measurements"] else []
    return lines + [f"wrote {', '.join(str(p) for p in written)}"]


def task_line(results: dict, task: str) -> str:
    info = results["tasks"][task]
    cells = [f"{label} {per[task].summary.cell()}" for label, per in results["systems"].items() if task in per]
    return f"{task} ({info['items']} items) {KINDS[info['kind']].Summary.CELL_WHAT}: " + "  ".join(cells)
