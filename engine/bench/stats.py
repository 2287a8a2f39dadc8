"""Small timing helpers shared by the benchmark sections: percentiles and the median-of-repeats
mean cost of a call over a list of inputs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["per_call_us", "per_item_us", "percentile"]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def per_call_us(fn: Callable[[], object], calls: int, repeats: int = 5) -> float:
    """Median over `repeats` of the mean time per call of `fn`, in microseconds."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples)


def per_item_us(fn: Callable[[Any], object], items: Sequence[Any], repeats: int = 5) -> float:
    """Median over `repeats` passes of the mean time of `fn(item)` over `items`, in microseconds."""
    for item in items[: min(len(items), 50)]:
        fn(item)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        samples.append((time.perf_counter() - start) / len(items) * 1e6)
    return statistics.median(samples)
