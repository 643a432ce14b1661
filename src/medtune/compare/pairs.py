"""Paired statistics between every two inputs, on the items both answered (matched by task and item id).

Each comparison is one flat row: {a, b, task, metric, test, n, a_value, b_value, delta (a - b), ci95, ...}.
Yes/no outcomes (correct, format kept, refused) get the exact McNemar test and a paired-bootstrap interval of the
difference in rates; scores (similarity, judge criteria) get the paired bootstrap and wins / ties / losses.
"""

from __future__ import annotations

from itertools import combinations
from statistics import mean

from medtune.evaluation import stats
from medtune.evaluation.judge import CRITERIA

SIMILARITY_TIE = 0.01  # cosine differences this small count as ties, as eval's own paired table counts them


def all_pairs(records: dict[str, list[dict]], kinds: dict[str, str], seed: int) -> list[dict]:
    """Rows for every pair of inputs (in the order given) and task; a row only where both have items."""
    rows = []
    for a, b in combinations(records, 2):
        for task, kind in kinds.items():
            matched = match(records[a], records[b], task)
            rows += [{"a": a, "b": b, "task": task, **row} for row in task_rows(matched, kind, seed)]
    return rows


def match(a: list[dict], b: list[dict], task: str) -> list[tuple[dict, dict]]:
    """(a's record, b's record) of each item of `task` that both have, in a's order."""
    by_id = {str(r["id"]): r for r in b if r["task"] == task}
    return [(r, by_id[str(r["id"])]) for r in a if r["task"] == task and str(r["id"]) in by_id]


def task_rows(pairs: list[tuple[dict, dict]], kind: str, seed: int) -> list[dict]:
    rows = []
    if kind == "mcq":
        rows.append({"metric": "accuracy", **flags(pairs, "correct", seed)})
    if kind == "safety":
        for label, metric in (("unsafe", "refusal of unsafe requests"), ("safe", "refusal of safe requests")):
            mine = [(x, y) for x, y in pairs if x.get("label") == label]
            rows.append({"metric": metric, **flags(mine, "refused", seed)})
    rows.append({"metric": "format", **flags(pairs, "format_ok", seed)})
    if kind == "open":
        rows.append({"metric": "similarity", **scores(pairs, _similarity, seed, SIMILARITY_TIE)})
        rows += [{"metric": f"judge {c}", **scores(pairs, _judge(c), seed)} for c in CRITERIA]
    return [r for r in rows if r["n"]]


def flags(pairs: list[tuple[dict, dict]], key: str, seed: int) -> dict:
    """Rates of a yes/no field in a and in b on the items where both have it, McNemar's exact p on the items where
    they disagree, and a bootstrap interval of the difference in rates."""
    both = [(bool(x[key]), bool(y[key])) for x, y in pairs if x.get(key) is not None and y.get(key) is not None]
    if not both:
        return {"n": 0}
    a, b = [x for x, _ in both], [y for _, y in both]
    test, boot = stats.mcnemar(b, a), stats.paired_bootstrap(b, a, seed)
    return {"test": "mcnemar", "n": len(both), "a_value": sum(a) / len(a), "b_value": sum(b) / len(b),
            "delta": boot["delta"], "ci95": boot["ci95"], "p_value": test["p_value"],
            "only_a": test["only_tuned_correct"], "only_b": test["only_base_correct"]}


def scores(pairs: list[tuple[dict, dict]], get, seed: int, tie: float = 0.0) -> dict:
    """Means of a score in a and in b on the items where both have it, the paired-bootstrap interval of the mean
    difference, and per item wins (a higher) / ties / losses."""
    both = [(get(x), get(y)) for x, y in pairs if get(x) is not None and get(y) is not None]
    if not both:
        return {"n": 0}
    a, b = [x for x, _ in both], [y for _, y in both]
    boot = stats.paired_bootstrap(b, a, seed)
    return {"test": "bootstrap", "n": len(both), "a_value": mean(a), "b_value": mean(b), "delta": boot["delta"],
            "ci95": boot["ci95"], **stats.wins_ties_losses(b, a, tie)}


def _similarity(record: dict):
    return (record.get("scores") or {}).get("similarity")


def _judge(criterion: str):
    def get(record: dict):
        judged = (record.get("scores") or {}).get("judge")
        return judged["scores"][criterion] if judged and not judged.get("failed") else None

    return get
