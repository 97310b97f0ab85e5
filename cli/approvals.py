"""``asm approvals ls|approve|deny``: the human side of tool approvals.

``ls`` finds runs waiting for approvals through the ``AsmPendingApprovals`` search attribute
and asks each run for its current list; ``approve`` / ``deny`` name the action digest ``ls``
shows, so a decision never applies to other arguments than the ones listed. Temporal calls
only: no event store is opened.
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Literal

import typer
from rich.table import Table

from agent_session_manager.cli.options import current, json_alias, shared
from agent_session_manager.cli.output import err, out, print_json
from agent_session_manager.cli.runtime import runtime
from agent_session_manager.core.tools import ApprovalResolution

app = typer.Typer(help="List, approve and deny pending tool approvals.", no_args_is_help=True)

AsJson = Annotated[bool, typer.Option("--json", hidden=True, help="= -o json")]
Reason = Annotated[str | None, typer.Option(help="recorded with the decision")]
CallId = Annotated[
    str | None, typer.Option("--call", help="the tool call id (rejects a digest of another call)")
]


@app.command()
@shared()
def ls(
    session: Annotated[
        str | None, typer.Option("--session", "-s", help="only this session")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List approvals waiting for a decision (all sessions, or one); -o json prints one
    JSON array."""
    json_alias(as_json)

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            pending = await rt.client.pending_approvals(session)
        if current.json:
            print(json.dumps([p.model_dump(mode="json") for p in pending]), flush=True)
            return
        if not pending:
            err.print("no pending approvals")
            return
        table = Table()
        for col in ("run", "call", "tool", "expires", "digest"):
            table.add_column(col)
        for p in pending:
            table.add_row(p.run_id, p.call_id, p.tool, p.expires_at or "-", p.digest)
        out.print(table)

    asyncio.run(main())


def _decide(
    decision: Literal["approve", "deny"],
    run_id: str,
    digest: str,
    call_id: str | None,
    reason: str | None,
) -> None:
    async def main() -> None:
        async with runtime(with_store=False) as rt:
            method = rt.client.approve if decision == "approve" else rt.client.deny
            result: ApprovalResolution = await method(
                run_id, digest, call_id=call_id, reason=reason
            )
        if current.json:
            print_json(result)
        else:
            out.print(f"{result.call_id} {result.decision}", highlight=False)

    asyncio.run(main())


@app.command()
@shared()
def approve(
    run_id: str,
    digest: str,
    call_id: CallId = None,
    reason: Reason = None,
    as_json: AsJson = False,
) -> None:
    """Grant an approval: exit 1 with approval_already_resolved if it was decided already."""
    json_alias(as_json)
    _decide("approve", run_id, digest, call_id, reason)


@app.command()
@shared()
def deny(
    run_id: str,
    digest: str,
    call_id: CallId = None,
    reason: Reason = None,
    as_json: AsJson = False,
) -> None:
    """Deny an approval (the model is told the call was not approved)."""
    json_alias(as_json)
    _decide("deny", run_id, digest, call_id, reason)
