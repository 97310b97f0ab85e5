"""The machine around the benchmark: its load, and the CPU each side costs.

Ours and bare share one process, one dev server and the machine's CPUs with whatever else runs
there, so the report carries the load before and after, and CPU seconds per run for both sides.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from typing import Any

import psutil

from run_bench.stats import ms


def load_snapshot() -> dict[str, Any]:
    """The machine's load, so a reader can judge the noise (others run tests here too)."""
    try:
        one, five, _fifteen = os.getloadavg()
    except OSError:
        return {}
    return {"loadavg_1m": round(one, 2), "loadavg_5m": round(five, 2), "cpus": os.cpu_count()}


def server_pids() -> list[int]:
    """The dev server: our child processes running the ``temporal`` binary."""
    pids = []
    for child in psutil.Process().children():
        with contextlib.suppress(psutil.Error):
            if child.name().startswith("temporal"):
                pids.append(child.pid)
    return pids


def _cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds of ``pids`` so far (0 where unreadable)."""
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


class CpuMeter:
    """CPU seconds spent by this process (worker + client) and by the dev server, per side."""

    def __init__(self, server_pids: list[int]) -> None:
        self.pids = server_pids
        self.totals: dict[str, list[float]] = {}  # side -> [python s, server s, runs]

    @contextlib.contextmanager
    def measure(self, side: str, runs: int) -> Iterator[None]:
        p0, s0 = time.process_time(), _cpu_seconds(self.pids)
        try:
            yield
        finally:
            acc = self.totals.setdefault(side, [0.0, 0.0, 0])
            acc[0] += time.process_time() - p0
            acc[1] += _cpu_seconds(self.pids) - s0
            acc[2] += runs

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for side, (py, srv, runs) in self.totals.items():
            if runs:
                out[side] = {
                    "python_cpu_ms_per_run": ms(py / runs),
                    "server_cpu_ms_per_run": ms(srv / runs) if self.pids else None,
                }
        return out
