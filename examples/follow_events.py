"""Follow a session's events from a second process, live, until the session ends.

    python examples/follow_events.py ses_…            # every event, one line each
    python examples/follow_events.py ses_… --text     # only the assistant's text, as it streams

Another process (``asm run …``, ``examples/multi_turn.py``, your app) drives the session; this
one only reads the event store, by cursor, so it can start late (``--after SEQ``) or restart
where it stopped without missing or repeating an event.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from _connect import connect

from agent_session_manager import Event, EventType

SESSION_ENDS = {
    EventType.SESSION_COMPLETED,
    EventType.SESSION_FAILED,
    EventType.SESSION_CANCELLED,
}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("session_id")
    parser.add_argument("--after", type=int, default=0, help="start after this seq")
    parser.add_argument("--text", action="store_true", help="print only the streamed text")
    args = parser.parse_args()

    def ended(event: Event) -> bool:
        return event.type in SESSION_ENDS

    client = await connect()
    try:
        async for event in client.stream_events(args.session_id, args.after, until=ended):
            if args.text:
                if event.type is EventType.MESSAGE_STREAMED and not event.data.get("kind"):
                    print(event.data.get("text", ""), end="", flush=True)
                elif event.type in (EventType.RUN_COMPLETED, EventType.RUN_FAILED):
                    print(flush=True)
                continue
            run = f" {event.run_id}" if event.run_id else ""
            print(f"{event.seq:>4} {event.type.value}{run}", flush=True)
        return 0
    finally:
        await client.close()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
