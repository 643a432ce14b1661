"""prepare's report in a few human lines: what was read, kept and dropped, and the length audit."""

from __future__ import annotations


def length_to_keep(report: dict) -> int | None:
    """The model.max_length that keeps 90% of the training examples whole (the audit's p90), or None."""
    tokens = report.get("length", {}).get("train", {}).get("tokens")
    return tokens.get("p90") if tokens else None


def length_advice(report: dict, max_length: int) -> str:
    """What to change when the length policy left nothing to train on."""
    keep = length_to_keep(report)
    advice = f"model.max_length={keep} keeps 90% of them" if keep else "raise model.max_length"
    return f"{advice} (now {max_length}), or set data.overlong=truncate"


def _overlong_advice(report: dict) -> list[str]:
    """Say it loudly when the length policy removes a large share of the training data."""
    audit = report["length"].get("train", {})
    over, total = audit.get("exceed_max_length", 0), audit.get("examples", 0)
    if not total or over / total < 0.1:
        return []
    return [f"warning: {over} of {total} training examples are longer than model.max_length={audit['max_length']} "
            f"(p90 {audit['tokens']['p90']}, p99 {audit['tokens']['p99']} tokens): model.max_length="
            f"{audit['tokens']['p90']} keeps 90% of them whole (data.overlong={report['length']['policy']})"]


def _safety_share(report: dict) -> str:
    """' (incl. N safety examples)' after the train count when data.safety_examples added some."""
    added = report.get("safety_examples", {}).get("added")
    return f" (incl. {added} safety examples)" if added else ""


def _safety_line(entry: dict) -> str:
    """What data.safety_examples added, by category."""
    cats = ", ".join(f"{name} {n}" for name, n in entry["categories"].items())
    line = f"safety examples: {entry['added']} refusal demonstrations mixed into train" + (f" ({cats})" if cats else "")
    skipped = entry.get("already_in_train")
    return line + (f"; {skipped} already among the training questions, not added again" if skipped else "")


def summary(report: dict) -> str:
    """A few human lines: what was read, kept and dropped, and the length audit."""
    c = report["counts"]
    lines = [f"format {report['detected_format']}: read {c['read']} records, {len(report['bad_lines'])} bad lines, "
             f"{c.get('duplicates_removed', 0)} duplicates removed"
             + (f", first {c['after_limit']} kept (data.limit)" if "after_limit" in c else "")]
    apart = c.get("read_apart", {})
    lines.append("splits: " + ", ".join(f"{n} {k}{_safety_share(report) if n == 'train' else ''}"
                                        + (" (read apart)" if n in apart else "")
                                        for n, k in c["splits"].items()))
    if "safety_examples" in report:
        lines.append(_safety_line(report["safety_examples"]))
    overlap = {n: o["records"] for n, o in report.get("overlap", {}).items() if o["records"]}
    if overlap:
        lines.append("warning: questions also in train: " + ", ".join(f"{n} {k}" for n, k in overlap.items())
                     + " (prepare_report.json lists them; they measure memory, not generalisation)")
    if "leakage" in report:
        lines.append(f"leakage: {report['leakage']['leaked_records']} training questions found in evaluation files")
    for name, a in report.get("length", {}).items():
        if isinstance(a, dict) and a.get("examples"):
            lost = a["would_lose_answer"]
            lines.append(f"{name} tokens p50 {a['tokens']['p50']} p90 {a['tokens']['p90']} p99 {a['tokens']['p99']} "
                         f"max {a['tokens']['max']}; {a['exceed_max_length']} over max_length {a['max_length']} "
                         f"(answer cut {lost['answer_cut']}, answer lost {lost['answer_lost']}, "
                         f"prompt overflow {lost['prompt_overflow']}) -> {report['length']['policy']}")
    if "kept" in c:
        test = c["splits"].get("test")
        whole = f"; test {test} kept whole (evaluation reads the question, not the length)" if test else ""
        lines.append("kept after length policy: " + ", ".join(f"{n} {k}" for n, k in c["kept"].items()) + whole)
        cut = {n: len(s) for n, s in report.get("truncated", {}).items() if s}
        if cut:
            lines.append("truncated to max_length: " + ", ".join(f"{n} {k}" for n, k in cut.items()))
        lines += _overlong_advice(report)
    lines += [f"note: {n}" for n in report["notes"]]
    return "\n".join(lines)
