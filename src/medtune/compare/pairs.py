"""Paired statistics between every two inputs, on the items both answered (matched by task and item id).

Each comparison is one flat row: {a, b, task, metric, test, n, a_value, b_value, delta (a - b), ci95, p_value, ...}.
Which metrics a task has, and how each is tested, is its kind's (Task.pair_rows): yes/no outcomes (correct, format
kept, refused) by McNemar's exact test with a paired-bootstrap interval of the difference in rates; scores
(similarity, judge criteria) by a sign-flip permutation test with a paired-bootstrap interval and wins / ties /
losses.
"""

from __future__ import annotations

from itertools import combinations

from medtune.evaluation.records import ItemRecord


def all_pairs(records: dict[str, list[ItemRecord]], tasks: list, seed: int) -> list[dict]:
    """Rows for every pair of inputs (in the order given) and task; a row only where both have items."""
    rows = []
    for a, b in combinations(records, 2):
        for task in tasks:
            matched = match(records[a], records[b], task.name)
            rows += [{"a": a, "b": b, "task": task.name, **row} for row in task.pair_rows(matched, seed) if row["n"]]
    return rows


def match(a: list[ItemRecord], b: list[ItemRecord], task: str) -> list[tuple[ItemRecord, ItemRecord]]:
    """(a's record, b's record) of each item of `task` that both have, in a's order."""
    by_id = {str(r.id): r for r in b if r.task == task}
    return [(r, by_id[str(r.id)]) for r in a if r.task == task and str(r.id) in by_id]
