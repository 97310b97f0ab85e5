"""Percentiles, milliseconds and ratios as the report prints them."""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from typing import Any


def pct(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (None for no values)."""
    if not values:
        return None
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 2)


def summary_ms(values: list[float]) -> dict[str, Any]:
    """n, p50, p95, mean, min, max in milliseconds."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50_ms": ms(pct(values, 50)),
        "p95_ms": ms(pct(values, 95)),
        "mean_ms": ms(statistics.fmean(values)),
        "min_ms": ms(min(values)),
        "max_ms": ms(max(values)),
    }


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or not b else round(a / b, 3)


def wall(dt: datetime) -> float:
    """A stored ``created_at`` as a POSIX timestamp (naive values are UTC)."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.timestamp()


def spread_ms(values: list[float]) -> dict[str, Any]:
    """The median of ``values`` and how far they spread (min, quartiles, max), in ms."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "median_ms": ms(statistics.median(values)),
        "q1_ms": ms(pct(values, 25)),
        "q3_ms": ms(pct(values, 75)),
        "min_ms": ms(min(values)),
        "max_ms": ms(max(values)),
    }
