"""``asm session …``: start, inspect, move through the status machine, and cancel sessions.

Every one of these is a Temporal call (start, query, update, signal, visibility): none opens
the event store, so a database outage cannot fail them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated

import typer

from agent_session_manager.cli.output import err, out, print_sessions, print_view
from agent_session_manager.cli.runtime import runtime
from agent_session_manager.client.limits import session_waiters
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import MockScript, SessionSpec, SessionView
from agent_session_manager.core.errors import AsmError
from agent_session_manager.store import open_store
from agent_session_manager.worker.settings import Settings

app = typer.Typer(help="Start, inspect, complete and cancel sessions.", no_args_is_help=True)

Reason = Annotated[str | None, typer.Option(help="recorded in the event")]


@app.command()
def start(
    agent: Annotated[str, typer.Option("--agent", help="agent id")] = "default-agent",
    provider: Annotated[str, typer.Option(help="mock, anthropic, codex, claude-code, …")] = "mock",
    model: Annotated[str | None, typer.Option(help="model name")] = None,
    system: Annotated[str | None, typer.Option("--system", help="system prompt")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="tag (repeatable)")] = None,
    session_id: Annotated[str | None, typer.Option("--id", help="session id")] = None,
    strategy: Annotated[str, typer.Option(help="reject|enqueue|interrupt|rollback")] = "reject",
    no_activate: Annotated[bool, typer.Option("--no-activate", help="stay pending")] = False,
    mock_script: Annotated[
        str | None, typer.Option("--mock-script", help="MockScript JSON for the mock provider")
    ] = None,
) -> None:
    """Start a session and print its id."""
    spec = SessionSpec(
        agent_id=agent,
        provider=provider,
        model=model,
        system_prompt=system,
        tags=tag or [],
        session_id=session_id,
        multitask_strategy=strategy,  # the model checks it
        activate=not no_activate,
        mock=MockScript.model_validate_json(mock_script) if mock_script else None,
    )

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            view = await rt.client.start_session(spec)
            out.print(view.session_id, highlight=False)
            link = rt.client.ui_link(view.session_id)
            err.print(f"status {view.status.value}" + (f" · {link}" if link else ""))

    asyncio.run(main())


@app.command()
def show(session_id: str) -> None:
    """Show a session: status, runs, usage, its Temporal UI link, and (when fleet-wide
    limits are configured) the slots its runs hold or wait for."""
    settings = Settings()
    limits = settings.fleet_limits()

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            print_view(await rt.client.describe(session_id), rt.client.ui_link(session_id))
        if limits.runs_limited or limits.sessions_limited:
            await _print_slots(settings.database_url, session_id)

    asyncio.run(main())


async def _print_slots(database_url: str, session_id: str) -> None:
    # Only with limits configured: the store is then part of starting a run anyway.
    try:
        store = await open_store(database_url)
        try:
            waiters = await session_waiters(store, session_id)
        finally:
            await store.close()
    except AsmError as exc:  # the session's view is shown already: say what is missing
        err.print(f"fleet slots unknown: {exc.code}: {exc.message}", markup=False)
        return
    if not waiters:
        out.print("fleet slots: none held, none waited for")
    for w in waiters:
        verb = "holds" if w.state == "held" else f"waits {w.waited_seconds:g}s for"
        out.print(f"fleet slots: {w.lease_id} {verb} {', '.join(w.scopes)}", highlight=False)


@app.command()
def ls(
    status: Annotated[str | None, typer.Option(help="filter by AsmStatus")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List sessions (Temporal visibility, newest first)."""
    query = f'{search_attributes.STATUS.name} = "{status}"' if status else None

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            print_sessions(await rt.client.list_sessions(query, limit=limit))

    asyncio.run(main())


def _transition(
    method: Callable[[SessionClient], Callable[[str, str | None], Awaitable[SessionView]]],
    session_id: str,
    reason: str | None,
) -> None:
    async def main() -> None:
        async with runtime(with_store=False) as rt:
            print_view(await method(rt.client)(session_id, reason))

    asyncio.run(main())


@app.command()
def complete(session_id: str, reason: Reason = None) -> None:
    """Complete a session (no run may be running)."""
    _transition(lambda client: client.complete_session, session_id, reason)


@app.command()
def activate(session_id: str, reason: Reason = None) -> None:
    """Activate a pending session."""
    _transition(lambda client: client.activate, session_id, reason)


@app.command()
def pause(session_id: str, reason: Reason = None) -> None:
    """Pause a session: new runs are held until resume."""
    _transition(lambda client: client.pause, session_id, reason)


@app.command()
def resume(session_id: str, reason: Reason = None) -> None:
    """Resume a paused session."""
    _transition(lambda client: client.resume, session_id, reason)


@app.command()
def cancel(
    session_id: str,
    reason: Reason = None,
    wait: Annotated[bool, typer.Option(help="wait until the session has ended")] = True,
) -> None:
    """Cancel a session and every run in it."""

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            await rt.client.cancel_session(session_id, reason)
            if wait:
                summary = await rt.client.result(session_id)
                out.print(f"{session_id} {summary.status.value}")
            else:
                out.print(f"cancel requested for {session_id}")

    asyncio.run(main())
