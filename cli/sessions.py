"""``asm session …``: start, inspect, move through the status machine, and cancel sessions.

Every one of these is a Temporal call (start, query, update, signal, visibility): none opens
the event store, so a database outage cannot fail them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated

import typer

from agent_session_manager.cli.options import (
    Strategy,
    current,
    parse_mock_script,
    shared,
    validated,
)
from agent_session_manager.cli.output import err, out, print_json, print_sessions, print_view
from agent_session_manager.cli.project import Project, find_project, require_store
from agent_session_manager.cli.runtime import command_settings, runtime
from agent_session_manager.client.limits import session_waiters
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import MockScript, SessionSpec, SessionView
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.status import SessionStatus
from agent_session_manager.store import open_store

app = typer.Typer(help="Start, inspect, complete and cancel sessions.", no_args_is_help=True)

DEFAULT_STRATEGY = Strategy("reject")
Reason = Annotated[str | None, typer.Option(help="recorded in the event")]
#: The statuses as a choice for ``ls --status``.
StatusChoice = Enum("StatusChoice", {s.value: s.value for s in SessionStatus}, type=str)  # type: ignore[misc]


@app.command()
@shared()
def start(
    agent: Annotated[str, typer.Option("--agent", help="agent id")] = "default-agent",
    provider: Annotated[str, typer.Option(help="mock, anthropic, codex, claude-code, …")] = "mock",
    model: Annotated[str | None, typer.Option(help="model name")] = None,
    system: Annotated[str | None, typer.Option("--system", help="system prompt")] = None,
    tag: Annotated[list[str] | None, typer.Option("--tag", help="tag (repeatable)")] = None,
    session_id: Annotated[str | None, typer.Option("--id", help="session id")] = None,
    strategy: Annotated[
        Strategy, typer.Option(help="what a run submitted while one runs does")
    ] = DEFAULT_STRATEGY,
    no_activate: Annotated[bool, typer.Option("--no-activate", help="stay pending")] = False,
    mock_script: Annotated[
        MockScript | None,
        typer.Option(
            "--mock-script",
            parser=parse_mock_script,
            metavar="JSON",
            help="MockScript JSON for the mock provider",
        ),
    ] = None,
) -> None:
    """Start a session and print its id."""
    spec = validated(
        lambda: SessionSpec(
            agent_id=agent,
            provider=provider,
            model=model,
            system_prompt=system,
            tags=tag or [],
            session_id=session_id,
            multitask_strategy=strategy.value,
            activate=not no_activate,
            mock=mock_script,
        )
    )

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            view = await rt.client.start_session(spec)
            link = rt.client.ui_link(view.session_id)
            if current.json:
                print_json({**view.model_dump(mode="json"), "ui_link": link})
                return
            out.print(view.session_id, highlight=False)
            err.print(f"status {view.status.value}" + (f" · {link}" if link else ""))

    asyncio.run(main())


@app.command()
@shared()
def show(session_id: str) -> None:
    """Show a session: status, runs, usage, its Temporal UI link, and (when fleet-wide
    limits are configured) the slots its runs hold or wait for."""
    project = find_project()
    limits = command_settings(project).fleet_limits()

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            _print(await rt.client.describe(session_id), rt.client.ui_link(session_id))
        if limits.runs_limited or limits.sessions_limited:
            await _print_slots(project, session_id)

    asyncio.run(main())


async def _print_slots(project: Project, session_id: str) -> None:
    # Only with limits configured: the store is then part of starting a run anyway. The
    # project's store (found from any subdirectory), never one created by looking.
    try:
        require_store(project)
        store = await open_store(project.database_url)
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
@shared()
def ls(
    status: Annotated[
        StatusChoice | None, typer.Option(help="only sessions in this status")
    ] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List sessions (Temporal visibility, newest first)."""
    query = f'{search_attributes.STATUS.name} = "{status.value}"' if status else None

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            rows = await rt.client.list_sessions(query, limit=limit)
        if current.json:
            for row in rows:
                print_json(row)
        else:
            print_sessions(rows)

    asyncio.run(main())


def _print(view: SessionView, link: str | None = None) -> None:
    if current.json:
        print_json({**view.model_dump(mode="json"), "ui_link": link})
    else:
        print_view(view, link)


def _transition(
    method: Callable[[SessionClient], Callable[[str, str | None], Awaitable[SessionView]]],
    session_id: str,
    reason: str | None,
) -> None:
    async def main() -> None:
        async with runtime(with_store=False) as rt:
            _print(await method(rt.client)(session_id, reason))

    asyncio.run(main())


@app.command()
@shared()
def complete(session_id: str, reason: Reason = None) -> None:
    """Complete a session (no run may be running)."""
    _transition(lambda client: client.complete_session, session_id, reason)


@app.command()
@shared()
def activate(session_id: str, reason: Reason = None) -> None:
    """Activate a pending session."""
    _transition(lambda client: client.activate, session_id, reason)


@app.command()
@shared()
def pause(session_id: str, reason: Reason = None) -> None:
    """Pause a session: new runs are held until resume."""
    _transition(lambda client: client.pause, session_id, reason)


@app.command()
@shared()
def resume(session_id: str, reason: Reason = None) -> None:
    """Resume a paused session."""
    _transition(lambda client: client.resume, session_id, reason)


@app.command()
@shared()
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
                if current.json:
                    print_json(summary)
                else:
                    out.print(f"{session_id} {summary.status.value}")
            elif current.json:
                print_json({"session_id": session_id, "cancel_requested": True})
            else:
                out.print(f"cancel requested for {session_id}")

    asyncio.run(main())
