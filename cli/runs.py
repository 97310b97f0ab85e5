"""``asm run`` and ``asm events``: submit a run and follow it; read or tail a session's events."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from agent_session_manager.cli.output import err, out, print_event
from agent_session_manager.cli.runtime import CLI_PATIENCE, runtime
from agent_session_manager.client.session_client import Reset, read_events
from agent_session_manager.core.contract import RunRequest
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import open_store
from agent_session_manager.worker.settings import Settings


def run(
    prompt: Annotated[str, typer.Argument(help="the prompt; '-' reads it from stdin")],
    session: Annotated[str, typer.Option("--session", "-s", help="session id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream the reply")] = False,
    strategy: Annotated[str | None, typer.Option(help="reject|enqueue|interrupt|rollback")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the result")] = True,
) -> None:
    """Submit a run to a session; --follow streams tokens as they are produced.

    A prompt of any size works: over 4 KiB it is stored in the event store and the run
    carries its reference.
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    # The model checks the strategy; the prompt itself is checked by submit_run, which stores
    # a long one first (a RunRequest holding it inline would be refused as too large).
    checked = RunRequest(prompt="-", strategy=strategy)

    async def main() -> None:
        async with runtime() as rt:
            ref = await rt.client.submit_run(session, prompt, strategy=checked.strategy)
            err.print(
                f"run {ref.run_id} {ref.status.value}" + (f" ({ref.note})" if ref.note else "")
            )
            if follow:
                async for piece in rt.client.stream_text(session, ref.run_id):
                    if isinstance(piece, Reset):
                        out.print(f"\n(attempt {piece.attempt}: retrying)", style="yellow")
                    else:
                        out.print(piece.text, end="", markup=False, highlight=False)
                out.print()
            if wait:
                result = await rt.client.wait_run(ref.run_id, session)
                if not follow:
                    out.print(result.output, markup=False, highlight=False)
                err.print(
                    f"{result.status.value} · {result.usage.total_tokens} tokens"
                    + (
                        f" · {result.error['code']}: {result.error['message']}"
                        if result.error
                        else ""
                    )
                )
                if result.status is not RunStatus.COMPLETED:
                    raise SystemExit(1)

    asyncio.run(main())


def events(
    session_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep tailing")] = False,
    after: Annotated[int, typer.Option("--after", min=0, help="start after this seq")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON event per line")] = False,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these types")] = None,
) -> None:
    """Print a session's events; --follow tails them live (tokens as they stream)."""

    async def main() -> None:
        # Events live in the store: reading them needs no Temporal server.
        store = await open_store(Settings().database_url)
        try:
            # A typo'd id would otherwise follow nothing forever.
            await store.events(session_id, limit=1, must_exist=True)
            async for event in read_events(
                store,
                session_id,
                after,
                run_id=run,
                types=type_,
                follow=follow,
                patience=CLI_PATIENCE,
            ):
                print_event(event, as_json)
            if not as_json:
                out.print()
        finally:
            await store.close()

    asyncio.run(main())
