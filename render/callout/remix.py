"""The remix graph of a call-out: records joined by their ``remix_of`` edges (a record -> what it remixes).

The call-out keeps every edge as written; here an edge counts only when it names another record of
the call-out. Walks are iterative and visit each record once, so cycles, self-references and
10 000-record chains cannot loop or hit Python's recursion limit. Credits and the ledger both read
the cut's lineage from here.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from render.callout.folder import CallOut


def parents(rid: str, callout: CallOut) -> tuple[str, ...]:
    """The existing records ``rid`` remixes, in listed order, without itself or repeats."""
    rec = callout.record(rid)
    return tuple(p for p in dict.fromkeys(rec.remix_of) if p != rid and callout.record(p) is not None) if rec else ()


def broken_edges(rid: str, callout: CallOut) -> tuple[str, ...]:
    """What ``rid`` lists in ``remix_of`` that is no edge: itself, or ids not in the call-out (listed order, once each)."""
    rec = callout.record(rid)
    return tuple(p for p in dict.fromkeys(rec.remix_of) if p == rid or callout.record(p) is None) if rec else ()


def lineage(used: Iterable[str], callout: CallOut) -> dict[str, tuple[str, ...]]:
    """Every record the ``used`` records remix, transitively, with the shortest path that reaches it
    (``used record, ..., it``). Breadth-first over ``remix_of`` in listed order, so paths are short and
    deterministic, and the result lists records in the order the walk reached them."""
    used = tuple(dict.fromkeys(used))
    paths: dict[str, tuple[str, ...]] = {}
    seen = set(used)
    queue = deque((rid, (rid,)) for rid in used)
    while queue:
        rid, path = queue.popleft()
        for parent in parents(rid, callout):
            if parent not in seen:
                seen.add(parent)
                paths[parent] = path + (parent,)
                queue.append((parent, path + (parent,)))
    return paths


def cycles(start: Iterable[str], callout: CallOut) -> list[tuple[str, ...]]:
    """Cycles reachable from ``start`` (one per back edge of a depth-first walk), each as A, B, ..., A."""
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    found = []
    for root in dict.fromkeys(start):
        if root in state or callout.record(root) is None:
            continue
        path = [root]
        state[root] = 1
        stack = [iter(parents(root, callout))]
        while stack:
            parent = next(stack[-1], None)
            if parent is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(parent) == 1:
                found.append(tuple(path[path.index(parent):]) + (parent,))
            elif parent not in state:
                state[parent] = 1
                path.append(parent)
                stack.append(iter(parents(parent, callout)))
    return found
