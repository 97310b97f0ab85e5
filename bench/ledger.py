"""Cost-ledger benchmark: what billing an attempt and checking its budgets add to an attempt.

Side by side, interleaved, on one SQLite store in a temp dir: the median time of

* ``append_1``: appending one event (the least an attempt already writes: ``run_started``);
* ``bill``: writing one attempt's ledger row and reading its run's total (``EventStore.bill``);
* ``budget_check``: the reads of a check with a session, an agent and a tenant budget
  (``last_call`` and three ``spend`` sums) over a ledger of ``ROWS`` rows.

Prints one JSON document with the medians in ms and the ratios to ``append_1``. The ratios
matter, not the absolute times (the machine is shared).

Run: ``.venv/bin/python bench/ledger.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime

from agent_session_manager.core.events import EventDraft, EventType
from agent_session_manager.core.ledger import LedgerEntry
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.store import open_store, upgrade

ROWS = 5000
ROUNDS = 300


def entry(i: int, attempt: int = 1) -> LedgerEntry:
    return LedgerEntry(
        run_id=f"r{i}",
        attempt=attempt,
        session_id=f"s{i % 50}",
        agent_id=f"agent-{i % 5}",
        tenant=f"t{i % 3}",
        provider="anthropic",
        model="claude-sonnet-4-6",
        usage=TokenUsage(input_tokens=1000, output_tokens=200),
        cost_micros=6000,
        price_version="v",
        outcome="completed",
        day=datetime.now(UTC).date().isoformat(),
    )


async def main() -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/asm.db"
        await upgrade(url)
        store = await open_store(url)
        try:
            for i in range(ROWS):
                await store.bill(entry(i))
            day = datetime.now(UTC).date().isoformat()
            times: dict[str, list[float]] = {"append_1": [], "bill": [], "budget_check": []}
            for n in range(ROUNDS):
                start = time.perf_counter()
                await store.append(
                    [
                        EventDraft(
                            id=f"bench/{n}",
                            session_id="s-bench",
                            run_id="r-bench",
                            attempt=1,
                            type=EventType.RUN_STARTED,
                            data={"turn": 1},
                        )
                    ]
                )
                times["append_1"].append(time.perf_counter() - start)
                start = time.perf_counter()
                await store.bill(entry(ROWS + n))
                times["bill"].append(time.perf_counter() - start)
                start = time.perf_counter()
                await store.last_call("s7")
                await store.spend(session_id="s7")
                await store.spend(agent_id="agent-2", day=day)
                await store.spend(tenant="t1", day=day)
                times["budget_check"].append(time.perf_counter() - start)
        finally:
            await store.close()
    medians = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {
        "rows": ROWS,
        "rounds": ROUNDS,
        "median_ms": {k: round(v, 3) for k, v in medians.items()},
        "ratio_to_append_1": {k: round(v / medians["append_1"], 2) for k, v in medians.items()},
        "loadavg": os.getloadavg(),
    }


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main()), indent=2))
