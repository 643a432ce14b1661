"""The sentences of a comparison, as pure functions of the paired rows (pairs.py) and the measured figures.

Every paired row has a p-value: McNemar's exact test for yes/no outcomes, a sign-flip permutation test of the
mean difference for scores (stats.paired_p_value). adjust() Holm-adjusts them across all the rows of one
comparison. A test's sentence exists only for a significant difference (Holm-adjusted p < 0.05) and carries its
numbers; the rest go, named, into one "no significant difference" line. Speed, memory and loss are
measurements, not tests: their sentences state the measured ratio and both values.
"""

from __future__ import annotations

from medtune.evaluation import stats

ALPHA = 0.05
# a percentile bootstrap over a handful of items gives intervals far too narrow, and a score's finding quotes its
# interval: no finding from fewer, whatever the p
MIN_BOOTSTRAP_ITEMS = 10

RATE_CLAIMS = {  # metric -> what the input with the higher rate does
    "accuracy": "is more accurate than {lo}",
    "format": "keeps the answer format (reasoning closed, then an answer) more often than {lo}",
    "refusal of unsafe requests": "refuses more unsafe requests than {lo}",
    "refusal of safe requests": "refuses more safe requests (over-refusal) than {lo}",
}
TEST_NAMES = {"mcnemar": "McNemar", "bootstrap": "sign-flip"}  # the test behind each kind of row's p_value


def adjust(rows: list[dict]) -> list[dict]:
    """New rows, each with p_adjusted beside its p_value: Holm-adjusted across all the rows given. A comparison
    makes a test per pair of inputs, task and metric; unadjusted, one in twenty of the differences that are not
    there would pass p < 0.05. Holm keeps the chance of any false finding under 0.05, and p_adjusted >= p_value."""
    missing = [f"{r['task']} {r['metric']} ({r['a']} vs {r['b']})" for r in rows if r.get("p_value") is None]
    if missing:
        raise ValueError(f"paired rows without a p_value: {', '.join(missing)}")
    return [{**r, "p_adjusted": p} for r, p in zip(rows, stats.holm([r["p_value"] for r in rows]))]


def tests_made(rows: list[dict]) -> str | None:
    """How many tests the adjustment covered, for the report: '12 paired tests, Holm-adjusted across all of them'."""
    if not rows:
        return None
    if len(rows) == 1:
        return "1 paired test: its p needs no adjustment"
    return f"{len(rows)} paired tests, Holm-adjusted across all of them"


def significant(row: dict) -> bool:
    """Holm-adjusted p < 0.05 (rows from adjust()); a bootstrap row also needs MIN_BOOTSTRAP_ITEMS items."""
    if row["test"] == "bootstrap" and row["n"] < MIN_BOOTSTRAP_ITEMS:
        return False
    return row["p_adjusted"] < ALPHA


def finding(row: dict) -> str | None:
    """The sentence of one paired row, or None when its difference is not significant."""
    if not significant(row):
        return None
    hi, lo, x, y, delta, ci = _oriented(row)
    if row["test"] == "mcnemar":
        claim = RATE_CLAIMS[row["metric"]].format(lo=lo)
        return f"{hi} {claim} on {row['task']}: {x:.1%} vs {y:.1%}, {_ps(row)} (n = {row['n']})."
    if row["metric"] == "similarity":
        claim, what, digits = f"'s answers are closer to the references than {lo}'s", "mean similarity", 3
    else:
        claim, what, digits = f" gets higher {row['metric']} scores than {lo}", "mean", 2
    return (f"{hi}{claim} on {row['task']}: {what} {x:.{digits}f} vs {y:.{digits}f}, difference "
            f"{delta:+.{digits}f}, 95% CI [{ci[0]:+.{digits}f}, {ci[1]:+.{digits}f}] (paired bootstrap), "
            f"{_ps(row)} (n = {row['n']}).")


def _oriented(row: dict) -> tuple:
    """(higher, lower, its value, the other's, difference >= 0, its 95% CI): the sentence names the higher first."""
    if row["delta"] >= 0:
        return row["a"], row["b"], row["a_value"], row["b_value"], row["delta"], row["ci95"]
    lo, hi = row["ci95"]
    return row["b"], row["a"], row["b_value"], row["a_value"], -row["delta"], [-hi, -lo]


def p_text(p: float) -> str:
    return f"{p:.2g}"


def _ps(row: dict) -> str:
    """'McNemar p = 0.012, Holm-adjusted p = 0.047': the test's own p and the one a finding is judged by."""
    return f"{TEST_NAMES[row['test']]} p = {p_text(row['p_value'])}, Holm-adjusted p = {p_text(row['p_adjusted'])}"


def findings(rows: list[dict]) -> list[str]:
    return [s for s in map(finding, rows) if s]


def no_difference_line(rows: list[dict]) -> str | None:
    """One line naming every comparison without a significant difference, each with its numbers."""
    quiet = [r for r in rows if not significant(r)]
    if not quiet:
        return None
    return "No significant difference on: " + "; ".join(map(_quiet_part, quiet)) + "."


def _quiet_part(row: dict) -> str:
    if row["test"] == "mcnemar":
        numbers = f"{row['a_value']:.1%} vs {row['b_value']:.1%}, {_ps(row)}"
    else:
        lo, hi = row["ci95"]
        numbers = f"{row['a_value']:.3f} vs {row['b_value']:.3f}, 95% CI [{lo:+.3f}, {hi:+.3f}], {_ps(row)}"
        if row["n"] < MIN_BOOTSTRAP_ITEMS:
            numbers += f", too few items for the bootstrap (at least {MIN_BOOTSTRAP_ITEMS})"
    return f"{row['task']} {row['metric']} ({row['a']} vs {row['b']}: {numbers}, n = {row['n']})"


# ---------------------------------------------------------------- measurements (not tests)


def training_measurements(a: str, ta: dict, b: str, tb: dict) -> list[str]:
    """Ratios of what two runs' training measured; a figure missing from either run gives no sentence."""
    out = [
        _ratio(a, ta.get("tokens_per_s"), b, tb.get("tokens_per_s"), True,
               "{1} trained {r}x faster than {2} (tokens/s {x:,.0f} vs {y:,.0f}, median of the logged steps)."),
        _ratio(a, ta.get("wall_s"), b, tb.get("wall_s"), False,
               "{1}'s run took {r}x the wall time of {2}'s ({x:,.0f} s vs {y:,.0f} s; loading, evaluation and "
               "checkpoints included)."),
        _ratio(a, ta.get("peak_mem_mb"), b, tb.get("peak_mem_mb"), False,
               "{1} peaked at {r}x the memory of {2} ({x:,.0f} MB vs {y:,.0f} MB)."),
        _ratio(a, ta.get("trainable_params"), b, tb.get("trainable_params"), True,
               "{1} has {r}x the trainable parameters of {2} ({x:,} vs {y:,})."),
        _lower(a, ta.get("final_val_loss"), b, tb.get("final_val_loss"),
               "{1} ended at a lower validation loss than {2} ({x:.4f} vs {y:.4f}; per token of each model's own "
               "tokenizer)."),
    ]
    return [s for s in out if s]


def generation_measurement(task: str, a: str, ma: dict, b: str, mb: dict, side_by_side: bool = True) -> str | None:
    """Generation speed ratio on one task; `side_by_side` False says a stored evaluation ran at another time (and
    maybe on another machine)."""
    when = "" if side_by_side else "; not measured side by side: one evaluation is a stored one"
    return _ratio(a, ma.get("generation_tokens_per_s"), b, mb.get("generation_tokens_per_s"), True,
                  "{1} generated {r}x faster than {2} on " + task + " (tokens/s {x:,.1f} vs {y:,.1f} over the task's "
                  "time, safety screening included, model load and warm-up not, each in its own tokenizer's "
                  "tokens" + when + ").")


def _ratio(a: str, x, b: str, y, higher_first: bool, template: str) -> str | None:
    """template with {1} the input with the higher (or lower) value, {r} its ratio to the other's, {x} and {y}."""
    if not x or not y or x == y:  # equal figures: the table shows them, a ratio of 1 says nothing more
        return None
    if (x < y) == higher_first:
        a, x, b, y = b, y, a, x
    return template.format(None, a, b, r=f"{x / y:.2f}", x=x, y=y)


def _lower(a: str, x, b: str, y, template: str) -> str | None:
    if x is None or y is None or x == y:
        return None
    if x > y:
        a, x, b, y = b, y, a, x
    return template.format(None, a, b, x=x, y=y)
