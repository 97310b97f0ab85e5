"""How the CLI shows things: the two consoles, JSON, a session, a listing, a run and an event.

Text is for people; ``-o json`` (see :mod:`.options`) prints one JSON object, or one per line
for lists and streams, on stdout. When stdout is not a terminal nothing is cut to a width, so
piped ids are whole.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel
from rich.console import Console
from rich.table import Table

from agent_session_manager.client.session_client import SessionListing
from agent_session_manager.core.contract import RunView, SessionView
from agent_session_manager.core.events import Event, EventType

#: Results: what a script pipes on.
out = Console()
if not out.is_terminal:
    out.width = 100_000  # piped: tables keep every id whole (rich would fold them at 80)
#: Progress, status lines and errors: what a script leaves on the terminal.
err = Console(stderr=True)
if not err.is_terminal:
    err.width = 100_000  # a link or an id in a status line stays on one line in a log


def print_json(value: Any) -> None:
    """One JSON document on one line of stdout (a model, a dataclass, or plain data)."""
    print(json.dumps(jsonable(value), default=str), flush=True)


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def print_runs(runs: Sequence[RunView]) -> None:
    """A session's runs as a table, one row each."""
    table = Table()
    for col in ("run", "turn", "status", "tokens", "error"):
        table.add_column(col)
    for r in runs:
        code = str(r.error.get("code", "")) if r.error else ""
        table.add_row(r.run_id, str(r.turn), r.status.value, str(r.usage.total_tokens), code)
    out.print(table)


def dollars(micros: int) -> str:
    """Micro-dollars as dollars, every digit kept (no float rounding)."""
    return f"${micros // 1_000_000}.{micros % 1_000_000:06d}"


def print_view(view: SessionView, link: str | None = None) -> None:
    """A session's status line, its runs as a table, and its Temporal UI link."""
    table = Table(title=f"session {view.session_id}", show_lines=False)
    table.add_column("run")
    table.add_column("turn", justify="right")
    table.add_column("status")
    table.add_column("tokens", justify="right")
    for r in view.runs:
        table.add_row(r.run_id, str(r.turn), r.status.value, str(r.usage.total_tokens))
    out.print(
        f"[bold]{view.session_id}[/] agent={view.agent_id} provider={view.provider} "
        f"status=[bold]{view.status.value}[/] runs={view.run_count} "
        f"tokens={view.usage.total_tokens}"
        + (f" cost={dollars(view.cost_micros)}" if view.cost_micros else "")
        + (f" queued={len(view.queued)}" if view.queued else "")
    )
    if view.runs:
        out.print(table)
    if link:
        out.print(f"Temporal UI: {link}")


def print_sessions(rows: Sequence[SessionListing]) -> None:
    """Sessions as a table, one row each."""
    table = Table()
    for col in ("session", "agent", "provider", "status", "tokens", "workflow", "started"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r.session_id,
            r.agent_id or "",
            r.provider or "",
            r.status or "",
            str(r.total_tokens),
            r.workflow_status,
            r.started_at.strftime("%Y-%m-%d %H:%M:%S") if r.started_at else "",
        )
    out.print(table)


def print_event(event: Event, as_json: bool) -> None:
    """One event: a JSON line, streamed text as it comes, or a one-line summary."""
    if as_json:
        print(event.model_dump_json(), flush=True)
        return
    if event.type is EventType.MESSAGE_STREAMED:
        style = "dim" if event.data.get("kind") else ""
        out.print(
            str(event.data.get("text", "")), end="", style=style, markup=False, highlight=False
        )
        return
    run = f" {event.run_id}" if event.run_id else ""
    attempt = f" a{event.attempt}" if event.attempt else ""
    data = json.dumps(event.data, default=str)
    if len(data) > 160:
        data = data[:157] + "..."
    out.print(
        f"\n[cyan]{event.seq:>5}[/] [bold]{event.type.value}[/]{run}{attempt} {data}",
        highlight=False,
    )
