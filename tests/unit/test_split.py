"""Ratios parsing and seeded splits: deterministic, lossless, disjoint, sensible on tiny data."""

from __future__ import annotations

import pytest

from medtune.data.split import parse_ratios, split_records, split_sizes
from medtune.errors import DataError


@pytest.mark.parametrize(
    "spec, expected",
    [("0.8,0.2", (0.8, 0.2)), ("0.7,0.2,0.1", (0.7, 0.2, 0.1)), (" 0.9 , 0.1 ", (0.9, 0.1)), ([0.5, 0.5], (0.5, 0.5))],
)
def test_parse_ratios(spec, expected):
    assert parse_ratios(spec) == pytest.approx(expected)


@pytest.mark.parametrize(
    "spec, message",
    [
        ("0.8,0.3", "sum to 1.1, not 1"),
        ("0.7,0.2,0.2", "sum to 1.1, not 1"),
        ("1.0", "give 2"),
        ("0.4,0.3,0.2,0.1", "give 2"),
        ("1.1,-0.1", "must not be negative"),
        ("0,1", "train must be above 0"),
        ("a,b", "must be numbers"),
        ("0.8,", "must be numbers"),
    ],
)
def test_bad_ratios(spec, message):
    with pytest.raises(DataError, match=message):
        parse_ratios(spec)


def test_sum_tolerance_is_1e_6():
    assert parse_ratios("0.3333333,0.3333333,0.3333334")
    with pytest.raises(DataError):
        parse_ratios("0.33,0.33,0.33")


@pytest.mark.parametrize("ratios", [(0.8, 0.2), (0.7, 0.2, 0.1)])
@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 10, 101, 1000])
def test_nothing_lost_and_splits_disjoint(ratios, n):
    splits = split_records(list(range(n)), ratios, seed=816)
    assert list(splits) == ["train", "valid", "test"][: len(ratios)]
    together = [i for part in splits.values() for i in part]
    assert sorted(together) == list(range(n))


def test_split_is_deterministic_per_seed():
    records = list(range(50))
    first = split_records(records, (0.7, 0.2, 0.1), seed=816)
    assert first == split_records(records, (0.7, 0.2, 0.1), seed=816)
    assert first != split_records(records, (0.7, 0.2, 0.1), seed=817)
    assert first["train"] != records[:35]  # actually shuffled


def test_sizes_follow_ratios():
    assert split_sizes(100, (0.8, 0.2)) == [80, 20]
    assert split_sizes(100, (0.7, 0.2, 0.1)) == [70, 20, 10]
    assert split_sizes(161, (0.8, 0.2)) == [129, 32]
    assert split_sizes(10, (0.9, 0.1, 0.0)) == [9, 1, 0]


@pytest.mark.parametrize(
    "n, ratios, expected",
    [
        (0, (0.9, 0.1), [0, 0]),
        (1, (0.9, 0.1), [1, 0]),
        (2, (0.99, 0.01), [1, 1]),
        (5, (0.95, 0.05), [4, 1]),
        (2, (0.9, 0.05, 0.05), [1, 1, 0]),
        (3, (0.9, 0.05, 0.05), [1, 1, 1]),
    ],
)
def test_small_data_still_gets_a_validation_example(n, ratios, expected):
    assert split_sizes(n, ratios) == expected
