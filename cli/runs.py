"""``asm run …`` and ``asm events``: submit, list, show, wait for and cancel runs; read or tail a
session's events.

``asm run PROMPT --session ID`` (the ``start`` subcommand, the default) submits a run; the
other subcommands take a run id. A run id is enough: its session is looked up in the event
store (``--session`` skips that, and is needed for a run still queued).

Ctrl-C while following a run leaves the run going (it lives in the worker, not in this
process): the command prints how to re-attach and how to cancel, and exits 130.
``--cancel-on-interrupt`` cancels the run instead.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from typing import Annotated

import typer
from typer._click.core import Context
from typer.core import TyperGroup

from agent_session_manager.cli.options import Strategy, current, json_alias, shared
from agent_session_manager.cli.output import err, out, print_event, print_json, print_runs
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.cli.runtime import CLI_PATIENCE, Runtime, runtime
from agent_session_manager.client.session_client import Reset, read_events
from agent_session_manager.core.contract import MultitaskStrategy, RunResult
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.status import RunStatus
from agent_session_manager.store import open_store


class _StartByDefault(TyperGroup):
    """``asm run PROMPT …`` means ``asm run start PROMPT …`` (the command line before the
    subcommands existed); a word naming a subcommand selects it."""

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = ["start", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_StartByDefault,
    help="Submit a run (asm run PROMPT --session ID), or list, show, wait for and cancel runs.",
    no_args_is_help=True,
)

SessionOption = Annotated[
    str | None,
    typer.Option(
        "--session", "-s", help="the run's session (default: looked up in the event store)"
    ),
]
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="stream the reply")]
CancelOnInterrupt = Annotated[
    bool,
    typer.Option(
        "--cancel-on-interrupt",
        help="Ctrl-C cancels the run (default: it goes on, and the command says how to "
        "re-attach or cancel)",
    ),
]


@app.command("start")
@shared()
def start(
    prompt: Annotated[str, typer.Argument(help="the prompt; '-' reads it from stdin")],
    session: Annotated[str, typer.Option("--session", "-s", help="session id")],
    follow: FollowOption = False,
    strategy: Annotated[
        Strategy | None,
        typer.Option(help="if a run is running: the session's strategy unless given"),
    ] = None,
    wait: Annotated[bool, typer.Option(help="wait for the result")] = True,
    cancel_on_interrupt: CancelOnInterrupt = False,
) -> None:
    """Submit a run to a session (the default: `asm run PROMPT -s ID`); --follow streams
    tokens as they are produced. With -o json, prints the result (or, with --no-wait, the
    run's reference) as one object.

    A prompt of any size works: over 4 KiB it is stored in the event store and the run
    carries its reference.
    """
    if prompt == "-":
        prompt = sys.stdin.read()
    chosen: MultitaskStrategy | None = strategy.value if strategy else None

    async def main() -> int:
        async with runtime() as rt:
            ref = await rt.client.submit_run(session, prompt, strategy=chosen)
            err.print(
                f"run {ref.run_id} {ref.status.value}" + (f" ({ref.note})" if ref.note else "")
            )
            if not wait:
                if current.json:
                    print_json(ref)
                return 0
            return await _attend(rt, session, ref.run_id, follow, cancel_on_interrupt)

    raise SystemExit(asyncio.run(main()))


@app.command("wait")
@shared()
def wait_(
    run_id: str,
    session: SessionOption = None,
    follow: FollowOption = False,
    cancel_on_interrupt: CancelOnInterrupt = False,
) -> None:
    """Wait for a run to end (re-attach to it), printing its reply; --follow streams it.
    Exits 1 if the run did not complete."""

    async def main() -> int:
        async with runtime() as rt:
            sid = await _session_of(rt, run_id, session)
            return await _attend(rt, sid, run_id, follow, cancel_on_interrupt)

    raise SystemExit(asyncio.run(main()))


@app.command("ls")
@shared()
def ls(session_id: str) -> None:
    """List a session's runs: id, turn, status, tokens, error code."""

    async def main() -> None:
        async with runtime(with_store=False) as rt:
            view = await rt.client.describe(session_id)
        if current.json:
            for run in view.runs:
                print_json(run)
        else:
            print_runs(view.runs)
            if view.queued:
                out.print(f"queued: {' '.join(view.queued)}", highlight=False)

    asyncio.run(main())


@app.command("show")
@shared()
def show(run_id: str, session: SessionOption = None) -> None:
    """Show a run as its session sees it: turn, status, tokens, error."""

    async def main() -> None:
        async with runtime() as rt:
            sid = await _session_of(rt, run_id, session)
            view = await rt.client.describe(sid)
        run = next((r for r in view.runs if r.run_id == run_id), None)
        if run is None:
            if run_id in view.queued:
                if current.json:
                    print_json({"run_id": run_id, "session_id": sid, "status": "queued"})
                else:
                    out.print(f"{run_id} session={sid} status=queued", highlight=False)
                return
            raise error(
                "run_not_found",
                f"no run {run_id!r} in session {sid}: list them with `asm run ls {sid}`",
                details={"run_id": run_id, "session_id": sid},
            )
        if current.json:
            print_json({**run.model_dump(mode="json"), "session_id": sid})
            return
        problem = f" error={run.error.get('code')}: {run.error.get('message')}" if run.error else ""
        out.print(
            f"{run.run_id} session={sid} turn={run.turn} status={run.status.value} "
            f"tokens={run.usage.total_tokens}"
            + (f" stop={run.stop_reason}" if run.stop_reason else "")
            + problem,
            markup=False,
            highlight=False,
            soft_wrap=True,
        )

    asyncio.run(main())


@app.command("cancel")
@shared()
def cancel(
    run_id: str,
    session: SessionOption = None,
    reason: Annotated[str | None, typer.Option(help="recorded in the run_cancelled event")] = None,
) -> None:
    """Cancel a run and wait until it has stopped (a finished run is left as it is)."""

    async def main() -> None:
        async with runtime() as rt:
            sid = await _session_of(rt, run_id, session)
            ref = await rt.client.cancel_run(sid, run_id, reason)
        if current.json:
            print_json(ref)
        else:
            out.print(
                f"{ref.run_id} {ref.status.value}" + (f" ({ref.note})" if ref.note else ""),
                highlight=False,
            )

    asyncio.run(main())


async def _session_of(rt: Runtime, run_id: str, session: str | None) -> str:
    """The run's session: as given, else from the event store's row of the run."""
    if session:
        return session
    row = await rt.client.require_store().get_run(run_id)
    if row is None:
        raise error(
            "run_not_found",
            f"no run {run_id!r} in the event store: check the id (`asm run ls SESSION`), or "
            "give --session for a run still queued",
            details={"run_id": run_id},
        )
    return row.session_id


async def _attend(
    rt: Runtime, session: str, run_id: str, follow: bool, cancel_on_interrupt: bool
) -> int:
    """Follow and/or wait for a run, reporting it; the exit code. Ctrl-C: see the module."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    assert task is not None
    interrupted = False

    def on_interrupt() -> None:
        nonlocal interrupted
        interrupted = True
        task.cancel()

    loop.add_signal_handler(signal.SIGINT, on_interrupt)
    try:
        result = await _follow_and_wait(rt, session, run_id, follow)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        task.uncancel()
        loop.remove_signal_handler(signal.SIGINT)  # a second Ctrl-C stops this at once
        out.print()
        if cancel_on_interrupt:
            err.print(f"interrupted: cancelling run {run_id}…", highlight=False)
            ref = await rt.client.cancel_run(
                session, run_id, "interrupted (asm run --cancel-on-interrupt)"
            )
            err.print(f"run {ref.run_id} {ref.status.value}", highlight=False)
        else:
            err.print(
                f"interrupted: run {run_id} goes on in session {session}.\n"
                f"  re-attach: asm run wait {run_id} --session {session} --follow\n"
                f"  cancel:    asm run cancel {run_id} --session {session}",
                highlight=False,
                soft_wrap=True,
            )
        return 130
    finally:
        loop.remove_signal_handler(signal.SIGINT)
    _report(result, printed=follow and not current.json)
    return 0 if result.status is RunStatus.COMPLETED else 1


async def _follow_and_wait(rt: Runtime, session: str, run_id: str, follow: bool) -> RunResult:
    if follow and not current.json:
        async for piece in rt.client.stream_text(session, run_id):
            if isinstance(piece, Reset):
                out.print(f"\n(attempt {piece.attempt}: retrying)", style="yellow")
            else:  # the answer (thinking pieces come only when asked for)
                out.print(piece.text, end="", markup=False, highlight=False)
        out.print()
    return await rt.client.wait_run(run_id, session)


def _report(result: RunResult, *, printed: bool) -> None:
    if current.json:
        print_json(result)
        return
    if not printed:
        out.print(result.output, markup=False, highlight=False)
    err.print(
        f"{result.status.value} · {result.usage.total_tokens} tokens"
        + (f" · {result.error['code']}: {result.error['message']}" if result.error else ""),
        highlight=False,
        soft_wrap=True,
    )


@shared(connects=False)
def events(
    session_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep tailing")] = False,
    after: Annotated[int, typer.Option("--after", min=0, help="start after this seq")] = 0,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    type_: Annotated[
        list[EventType] | None, typer.Option("--type", help="only these types (repeatable)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", hidden=True, help="= -o json")] = False,
) -> None:
    """Print a session's events; --follow tails them live (tokens as they stream).
    With -o json, one JSON event per line (JSON Lines)."""
    json_alias(as_json)
    project = find_project()
    require_store(project)
    types = [t.value for t in type_] if type_ else None

    async def main() -> None:
        # Events live in the store: reading them needs no Temporal server.
        store = await open_store(project.database_url)
        try:
            # A typo'd id would otherwise follow nothing forever.
            await store.events(session_id, limit=1, must_exist=True)
            async for event in read_events(
                store,
                session_id,
                after,
                run_id=run,
                types=types,
                follow=follow,
                patience=CLI_PATIENCE,
            ):
                print_event(event, current.json)
            if not current.json:
                out.print()
        finally:
            await store.close()

    asyncio.run(main())
