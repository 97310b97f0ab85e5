"""``asm limits``: the fleet-wide limits and what holds them now."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from rich.table import Table

from agent_session_manager.cli.options import current, json_alias, shared
from agent_session_manager.cli.output import out
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.cli.runtime import command_settings
from agent_session_manager.client.limits import LimitsReport, limits_report
from agent_session_manager.store import open_store


@shared(connects=False)
def limits(
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="= -o json")] = False,
) -> None:
    """Fleet-wide limits (ASM_LIMITS / ASM_LIMITS_FILE) and their use: slots held and runs
    queued per scope and tenant, rate-limit cooldowns and per-minute budgets per credential.

    Exit 0; 1 for a bad limits file; 75 when the event store is unreachable (try again)."""
    json_alias(as_json)
    project = find_project()
    configured = command_settings(project).fleet_limits()  # a bad file: before any connection
    require_store(project)

    async def main() -> LimitsReport:
        store = await open_store(project.database_url)
        try:
            return await limits_report(store, configured)
        finally:
            await store.close()

    report = asyncio.run(main())
    if current.json:
        print(report.model_dump_json(), flush=True)
        return
    _print(report)


def _print(report: LimitsReport) -> None:
    set_limits = report.limits.model_dump(exclude_defaults=True)
    if not set_limits:
        out.print("no limits configured (set ASM_LIMITS or ASM_LIMITS_FILE; see docs/limits.md)")
    else:
        out.print("limits: " + ", ".join(f"{k}={v}" for k, v in sorted(set_limits.items())))
    for title, rows in (("sessions", report.sessions), ("runs", report.runs)):
        if not rows:
            continue
        table = Table(title=title)
        for col in ("scope", "limit", "held", "waiting", "per tenant (held/waiting)"):
            table.add_column(col)
        for r in rows:
            tenants = " ".join(f"{t or '-'}:{h}/{w}" for t, (h, w) in r.tenants.items())
            table.add_row(r.scope, str(r.limit), str(r.held), str(r.waiting), tenants)
        out.print(table)
    if report.rates:
        table = Table(title="rate limits")
        for col in ("credential/model", "cooldown left (s)", "reason", "budget left"):
            table.add_column(col)
        for rate in report.rates:
            budget = "" if rate.tokens is None else f"{rate.tokens:.1f}"
            table.add_row(rate.key, f"{rate.cooldown_seconds:g}", rate.reason, budget)
        out.print(table)
    if not (report.sessions or report.runs or report.rates):
        out.print("nothing held, nothing waiting, no cooldown")
