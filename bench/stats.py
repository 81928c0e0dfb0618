"""Summaries of timing samples: median, p95 and min, in milliseconds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def summary(samples_s: Sequence[float]) -> dict[str, float] | None:
    """{median, p95, min} in ms of samples given in seconds; None without samples."""
    if not samples_s:
        return None
    ms = sorted(s * 1000.0 for s in samples_s)
    # p95: nearest rank (the smallest sample with at least 95% at or below it).
    rank = max(1, math.ceil(0.95 * len(ms)))
    return {
        "median": round(statistics.median(ms), 3),
        "p95": round(ms[rank - 1], 3),
        "min": round(ms[0], 3),
    }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(numerator / denominator, 3)


def median_of(summary_: dict[str, float] | None) -> float | None:
    return None if summary_ is None else summary_["median"]
