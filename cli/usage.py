"""``asm usage``: what the provider attempts cost, from the cost ledger, grouped.

It reads only the event store (never Temporal): a Temporal outage cannot fail it. Every
attempt counts, failed, cancelled and superseded ones included, because providers bill them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

import typer
from rich.table import Table

from agent_session_manager.cli.options import current, shared, validated
from agent_session_manager.cli.output import dollars, out, print_json
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.core.errors import error
from agent_session_manager.core.ledger import UsageTotal
from agent_session_manager.store import open_store


class Group(StrEnum):
    """How ``asm usage`` groups the ledger."""

    run = "run"
    session = "session"
    agent = "agent"
    tenant = "tenant"
    day = "day"
    model = "model"


def parse_day(value: str, option: str) -> str:
    """``YYYY-MM-DD``, ``today``, ``yesterday`` or ``Nd`` (N days ago) as a UTC day."""
    today = datetime.now(UTC).date()
    if value == "today":
        return today.isoformat()
    if value == "yesterday":
        return (today - timedelta(days=1)).isoformat()
    if value.endswith("d") and value[:-1].isdigit() and len(value) <= 6:
        return (today - timedelta(days=int(value[:-1]))).isoformat()
    try:
        return datetime.strptime(value, "%Y-%m-%d").date().isoformat()
    except ValueError:
        raise error(
            "validation_error",
            f"{option} {value[:40]!r} is not a day: give YYYY-MM-DD, today, yesterday or Nd "
            "(N days ago, UTC)",
        ) from None


@shared(connects=False)
def usage(
    by: Annotated[Group, typer.Option("--by", help="group rows by this")] = Group.session,
    session: Annotated[str | None, typer.Option("--session", help="only this session")] = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    agent: Annotated[str | None, typer.Option("--agent", help="only this agent")] = None,
    tenant: Annotated[
        str | None, typer.Option("--tenant", help="only this tenant (tag tenant:<name>)")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="from this UTC day: YYYY-MM-DD, today, yesterday, 7d")
    ] = None,
    until: Annotated[str | None, typer.Option(help="to this UTC day (inclusive)")] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="at most this many rows")] = 100,
) -> None:
    """Tokens and cost of every provider attempt (failed and retried ones too), grouped by
    run, session, agent, tenant, day or model; most expensive first."""
    # A bad day is a usage error (exit 2, one line), like every other bad option value.
    since_day = validated(lambda: parse_day(since, "--since")) if since else None
    until_day = validated(lambda: parse_day(until, "--until")) if until else None
    project = find_project()
    require_store(project)

    async def main() -> list[UsageTotal]:
        store = await open_store(project.database_url)
        try:
            return await store.usage_totals(
                by.value,
                run_id=run,
                session_id=session,
                agent_id=agent,
                tenant=tenant,
                since=since_day,
                until=until_day,
                limit=limit,
            )
        finally:
            await store.close()

    totals = asyncio.run(main())
    if current.json:
        print_json({"group": by.value, "rows": [t.model_dump(mode="json") for t in totals]})
        return
    table = Table()
    for column in (by.value, "attempts", "input", "output", "cache w", "cache r", "total", "cost"):
        table.add_column(column, justify="left" if column == by.value else "right")
    for t in totals:
        u = t.usage
        cost = dollars(t.cost_micros) + (
            f" (+{t.unpriced_attempts} unpriced)" if t.unpriced_attempts else ""
        )
        table.add_row(
            t.key or "-",
            str(t.attempts),
            str(u.input_tokens),
            str(u.output_tokens),
            str(u.cache_creation_input_tokens),
            str(u.cache_read_input_tokens),
            str(u.total_tokens),
            cost,
        )
    out.print(table)
