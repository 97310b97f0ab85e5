"""The fuzz: ≥1,000 malformed starts, updates, signals and queries through a raw Temporal
client, then the invariants: no workflow wedged or terminated, no untyped error, nothing
written for a rejection, every session's ``seq`` gap-free, and a normal run still works.

``FUZZ_SEED`` picks the seed (``random`` for a fresh one; it is printed either way),
``FUZZ_REQUESTS`` the count. ``bench/fuzz.py`` runs longer, standalone.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

from temporalio.client import Client

from agent_session_manager.store import EventStore
from tests.chaos.fuzz_inputs import generate
from tests.chaos.fuzz_run import run_fuzz

DEFAULT_SEED = 13


def _seed() -> int:
    raw = os.environ.get("FUZZ_SEED", str(DEFAULT_SEED))
    return random.SystemRandom().randrange(2**32) if raw == "random" else int(raw)


async def test_a_thousand_malformed_requests_wedge_nothing_and_leave_no_trace(
    temporal: Client, store: EventStore, task_queue: str, tmp_path: Path, run_worker: Any
) -> None:
    seed = _seed()
    count = int(os.environ.get("FUZZ_REQUESTS", "1000"))
    requests = generate(seed, count)
    async with run_worker():
        report = await run_fuzz(temporal, store, task_queue, tmp_path / "asm.db", requests, seed)
    print(report.text())
    assert report.requests >= count
    assert report.violations == [], report.text()
