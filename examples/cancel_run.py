"""Cancel a run while it streams: the provider stops, the run ends ``cancelled`` with the
reason, and the session stays usable for the next turn.

    python examples/cancel_run.py

Uses the mock provider with a slow script, so it needs no API key: a worker (``asm dev``)
and its settings in the environment (see ``_connect.py``).
"""

from __future__ import annotations

import asyncio
import sys

from _connect import connect

from agent_session_manager import MockScript, RunStatus

#: A reply that would take a minute: 60 pieces, one a second.
SLOW = MockScript.model_validate(
    {"steps": [{"type": "text", "text": "tick " * 60, "chunk_size": 5, "delay_ms": 1000}]}
)


async def main() -> int:
    client = await connect()
    try:
        view = await client.start_session(agent_id="examples-cancel", provider="mock")
        sid = view.session_id
        ref = await client.submit_run(sid, "Count slowly, please.", mock=SLOW)
        print(f"run {ref.run_id} {ref.status.value}")
        # Wait for the first streamed piece: the provider is working.
        async for piece in client.stream_text(sid, ref.run_id):
            print(f"streaming: {piece.text!r}…")
            break
        stopped = await client.cancel_run(sid, ref.run_id, reason="the user changed their mind")
        print(f"cancel_run -> {stopped.status.value}")
        result = await client.wait_run(ref.run_id, sid)
        print(f"run {result.status.value}: {result.error}")
        if result.status is not RunStatus.CANCELLED:
            return 1
        # The session goes on: the next turn runs normally.
        after = await client.run(sid, "Just say hi.")
        print(f"next run {after.status.value}: {after.output!r}")
        await client.complete_session(sid)
        return 0 if after.status is RunStatus.COMPLETED else 1
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
