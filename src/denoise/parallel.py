"""Work spread over processes: results come back in order, with a bounded number in flight, so a stage can
stream a data set larger than memory through every core and write it as it comes."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import ProcessPoolExecutor
from typing import Callable, Iterable, Iterator


def workers(requested: int | None = None) -> int:
    """`requested`, or the cores this process may use."""
    if requested:
        return requested
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def ordered_map(function: Callable, items: Iterable, processes: int | None = None, ahead: int = 2) -> Iterator:
    """function(item) for each item, computed in `processes` worker processes (default: every core), yielded
    in the items' order; at most processes × ahead items are in flight."""
    processes = workers(processes)
    if processes == 1:
        yield from map(function, items)
        return
    with ProcessPoolExecutor(processes) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) >= processes * ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
