"""How figures are written in reports and console lines: percentages, numbers with a dash for none, intervals, and
Markdown tables. Shared by eval's and compare's reports and by the task kinds' own rows."""

from __future__ import annotations


def pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def num(value, digits: int = 4, unit: str = "") -> str:
    return "-" if value is None else f"{value:,.{digits}f}{unit}"


def dash(value) -> str:
    return "-" if value is None else str(value)


def ci(interval, digits: int = 4) -> str:
    return "-" if interval is None else f"[{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def pct_ci(interval) -> str:
    """[91.3, 98.3]: a rate's interval in percent."""
    return "-" if interval is None else f"[{100 * interval[0]:.1f}, {100 * interval[1]:.1f}]"


def table(title: str, head: list[str], rows: list[list], align: str | None = None, level: str = "##") -> list[str]:
    """A Markdown table under its heading; nothing when there are no rows. align: the rule line (default: the
    first two columns left, the rest right)."""
    if not rows:
        return []
    rule = align or "|" + "|".join("---" if i < 2 else "---:" for i in range(len(head))) + "|"
    return [f"{level} {title}", "", "| " + " | ".join(head) + " |", rule,
            *("| " + " | ".join(map(str, r)) + " |" for r in rows), ""]
