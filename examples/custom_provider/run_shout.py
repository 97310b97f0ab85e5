"""Use the installed ``shout`` provider from a session.

    pip install -e examples/custom_provider     # registers it (entry point)
    asm dev                                     # in another terminal: its worker loads it
    python examples/custom_provider/run_shout.py "durable agents on temporal"

A worker without the package refuses the session at start with ``validation_error`` naming
the providers it does run.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # examples/_connect.py

from _connect import connect

from agent_session_manager import RunStatus


async def main() -> int:
    prompt = " ".join(sys.argv[1:]) or "durable agents on temporal"
    client = await connect()
    try:
        view = await client.start_session(agent_id="examples-shout", provider="shout")
        result = await client.run(view.session_id, prompt)
        print(f"{result.status.value}: {result.output}")
        await client.complete_session(view.session_id)
        return 0 if result.status is RunStatus.COMPLETED else 1
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
