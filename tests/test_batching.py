"""Batches for one scoring pass: every row once, short runs, and the least padded work."""

from __future__ import annotations

import itertools

from hypothesis import given, settings
from hypothesis import strategies as st

from router_model.router import RUN_OVERHEAD_TOKENS, _length_sorted_batches


def _ids(lengths: list[int]) -> list[list[int]]:
    return [[7] * n for n in lengths]


def _work(lengths: list[int], batches: list[list[int]]) -> int:
    """What a split costs in the model's units: a run's overhead plus its padded tokens."""
    return sum(RUN_OVERHEAD_TOKENS + len(b) * max(lengths[i] for i in b) for b in batches)


def _cheapest_split(lengths: list[int], batch_size: int) -> int:
    """Every way of cutting the length-sorted rows into runs, tried one by one."""
    ordered = sorted(lengths)
    best = None
    for cuts in itertools.product((False, True), repeat=len(ordered) - 1):
        runs, start = [], 0
        for i, cut in enumerate(cuts, start=1):
            if cut:
                runs.append(ordered[start:i])
                start = i
        runs.append(ordered[start:])
        if max(len(r) for r in runs) > batch_size:
            continue
        work = sum(RUN_OVERHEAD_TOKENS + len(r) * r[-1] for r in runs)
        best = work if best is None else min(best, work)
    assert best is not None
    return best


lengths_lists = st.lists(st.integers(min_value=1, max_value=256), min_size=1, max_size=80)


@settings(max_examples=200, deadline=None)
@given(lengths=lengths_lists, batch_size=st.integers(min_value=1, max_value=40))
def test_every_row_is_scored_once_in_runs_of_at_most_the_batch_size(
    lengths: list[int], batch_size: int
) -> None:
    batches = list(_length_sorted_batches(_ids(lengths), batch_size))
    rows = [row for batch in batches for row in batch]
    assert sorted(rows) == list(range(len(lengths)))
    assert all(1 <= len(batch) <= batch_size for batch in batches)
    assert [lengths[i] for i in rows] == sorted(lengths)


@settings(max_examples=200, deadline=None)
@given(lengths=lengths_lists, batch_size=st.integers(min_value=1, max_value=40))
def test_the_split_is_never_dearer_than_fixed_size_chunks(
    lengths: list[int], batch_size: int
) -> None:
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    batches = list(_length_sorted_batches(_ids(lengths), batch_size))
    assert _work(lengths, batches) <= _work(lengths, chunks)


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(min_value=1, max_value=300), min_size=1, max_size=9),
    batch_size=st.integers(min_value=1, max_value=9),
)
def test_the_split_is_the_cheapest_there_is(lengths: list[int], batch_size: int) -> None:
    batches = list(_length_sorted_batches(_ids(lengths), batch_size))
    assert _work(lengths, batches) == _cheapest_split(lengths, batch_size)


def test_a_long_prompt_does_not_pad_the_short_ones() -> None:
    lengths = [20] * 31 + [256]
    batches = list(_length_sorted_batches(_ids(lengths), 32))
    assert [len(b) for b in batches] == [31, 1]
    assert batches[1] == [31]


def test_prompts_of_equal_length_share_one_run() -> None:
    batches = list(_length_sorted_batches(_ids([18] * 32), 32))
    assert [len(b) for b in batches] == [32]
