"""Seeded train / valid [/ test] splits: every record lands in exactly one split, none is lost."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from medtune.errors import DataError

SPLIT_NAMES = ("train", "valid", "test")


def parse_ratios(spec: str | Sequence[float]) -> tuple[float, ...]:
    """'0.8,0.2' or '0.7,0.2,0.1' (or a sequence of numbers) -> ratios that sum to 1."""
    parts = spec.split(",") if isinstance(spec, str) else list(spec)
    try:
        ratios = tuple(float(p) for p in parts)
    except (TypeError, ValueError):
        raise DataError(f"data.split = {spec!r}: ratios must be numbers, e.g. 0.8,0.2 or 0.7,0.2,0.1") from None
    if len(ratios) not in (2, 3):
        raise DataError(f"data.split = {spec!r}: give 2 (train,valid) or 3 (train,valid,test) ratios")
    if any(r < 0 or math.isnan(r) for r in ratios) or ratios[0] <= 0:
        raise DataError(f"data.split = {spec!r}: ratios must not be negative, and train must be above 0")
    if abs(sum(ratios) - 1.0) > 1e-6:
        raise DataError(f"data.split = {spec!r}: ratios sum to {sum(ratios):g}, not 1")
    return ratios


def split_sizes(n: int, ratios: Sequence[float]) -> list[int]:
    """Sizes that add up to n (largest remainder); valid and test get one each when small data allows."""
    exact = [n * r for r in ratios]
    sizes = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(ratios)), key=lambda i: (sizes[i] - exact[i], i))
    for i in by_remainder[: n - sum(sizes)]:
        sizes[i] += 1
    for i in range(1, len(ratios)):
        # A split asked for but left empty by rounding would silently skip validation or testing.
        if ratios[i] > 0 and sizes[i] == 0 and sizes[0] > 1 and n > i:
            sizes[0] -= 1
            sizes[i] += 1
    return sizes


def split_records(records: Sequence, ratios: Sequence[float], seed: int) -> dict[str, list]:
    """{'train': [...], 'valid': [...][, 'test': [...]]}, shuffled by seed, deterministic."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    splits, start = {}, 0
    sizes = split_sizes(len(records), ratios)
    for name, size in zip(SPLIT_NAMES[: len(sizes)], sizes, strict=True):
        splits[name] = [records[i] for i in order[start : start + size]]
        start += size
    return splits
