"""Warm intake and analysis run inline in their flows: cache hits are not mapped to Prefect task
runs (whose bookkeeping contends for Prefect's SQLite on every warm rebuild); work is."""

from __future__ import annotations

import time


def _tasks(log: list):
    def submit(rest: list) -> list:
        log.append(list(rest))
        return [f"task {x}" for x in rest]
    return submit


def test_cache_hits_run_inline_and_the_rest_go_to_tasks_in_their_own_order():
    from flows.pipeline import CACHE_HIT_S, _inline_then_tasks

    inline: list[str] = []
    submitted: list[list] = []

    def work(x: str) -> str:
        inline.append(x)
        if x in ("a", "d"):  # a is tried first and pays one-time imports; d is a cache miss
            time.sleep(CACHE_HIT_S * 3)
        return f"inline {x}"

    items = ["e", "d", "c", "b", "a", "f"]
    results = _inline_then_tasks(items, work, lambda x: x, _tasks(submitted))  # cheapest: alphabetical
    assert inline == ["a", "b", "c", "d"]  # nothing past the miss is touched inline
    assert submitted == [["e", "f"]]  # the rest, in the items' own order
    assert results == ["task e", "inline d", "inline c", "inline b", "inline a", "task f"]


def test_all_warm_means_no_tasks_and_a_failure_is_left_to_its_task():
    from flows.pipeline import _inline_then_tasks

    submitted: list[list] = []
    assert _inline_then_tasks([3, 1, 2], lambda n: n * 10, lambda n: n, _tasks(submitted)) == [30, 10, 20]
    assert submitted == []

    def work(n: int) -> int:
        if n == 2:
            raise OSError(5, "Input/output error")  # transient: the task's retries handle it
        return n

    assert _inline_then_tasks([3, 2, 1], work, lambda n: n, _tasks(submitted)) == ["task 3", "task 2", 1]
    assert submitted == [[3, 2]]
