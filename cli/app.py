"""The ``asm`` command line: the synchronous face of :class:`client.SessionClient`.

Exit codes: 0 success, 1 a reported error (taxonomy code and what to do next), 2 usage,
130 interrupted. The process ends through ``os._exit`` after flushing, because a process that
used a Temporal client can abort at interpreter exit (temporalio/sdk-python#300) and turn a
success into exit 134.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Coroutine
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from agent_session_manager.cli.runtime import DEV_UI_PORT, runtime
from agent_session_manager.client.session_client import Reset, TextDelta
from agent_session_manager.core.contract import MockScript, RunRequest, SessionSpec, SessionView
from agent_session_manager.core.errors import AsmError
from agent_session_manager.core.events import RUN_TERMINAL_EVENTS, Event
from agent_session_manager.worker.settings import Settings

app = typer.Typer(
    name="asm",
    help="agent-session-manager: durable agent sessions, runs and events on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
session_app = typer.Typer(
    help="Start, inspect, complete and cancel sessions.", no_args_is_help=True
)
db_app = typer.Typer(help="Event-store schema.", no_args_is_help=True)
app.add_typer(session_app, name="session")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

RUN_END = frozenset(t.value for t in RUN_TERMINAL_EVENTS.values())


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def _print_view(view: SessionView, link: str | None = None) -> None:
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
        f"tokens={view.usage.total_tokens}" + (f" queued={len(view.queued)}" if view.queued else "")
    )
    if view.runs:
        out.print(table)
    if link:
        out.print(f"Temporal UI: {link}")


def _print_event(event: Event, as_json: bool) -> None:
    if as_json:
        print(event.model_dump_json(), flush=True)
        return
    if event.type.value == "message_streamed":
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


# --- servers ------------------------------------------------------------------------------


@app.command()
def dev(
    port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = DEV_UI_PORT,
) -> None:
    """Start the embedded Temporal dev server (SQLite in .asm/) and a worker, until Ctrl-C."""
    from agent_session_manager.store import open_store, upgrade
    from agent_session_manager.worker.dev_server import (
        clear_dev_record,
        start_dev_server,
        write_dev_record,
    )
    from agent_session_manager.worker.worker import serve

    settings = Settings()

    async def main() -> None:
        await upgrade(settings.database_url)
        store = await open_store(settings.database_url)
        out.print(f"starting Temporal dev server on 127.0.0.1:{port} (data in {settings.home}/)…")
        env = await start_dev_server(home=settings.home, port=port, ui_port=ui_port)
        out.print(f"[green]ready[/]  Temporal: 127.0.0.1:{port}   UI: http://127.0.0.1:{ui_port}")
        write_dev_record(settings.home, f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
        out.print(f"worker on task queue '{settings.task_queue}', events in {store.display_url}")
        out.print("Ctrl-C to stop.")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            async with serve(env.client, store, settings=settings):
                await stop.wait()
                out.print("stopping…")
        finally:
            clear_dev_record(settings.home)
            await env.shutdown()
            await store.close()

    _run(main())


@app.command()
def worker() -> None:
    """Run a worker against ASM_TEMPORAL_ADDRESS (a cluster or `asm dev`)."""
    from agent_session_manager.worker.worker import serve

    settings = Settings()
    if not settings.temporal_address:
        raise AsmError(
            "validation_error",
            "set ASM_TEMPORAL_ADDRESS (e.g. 127.0.0.1:7233), or use `asm dev` for the "
            "embedded server with its own worker",
        )
    from agent_session_manager.observability import config as telemetry
    from agent_session_manager.worker.log_config import configure_logging

    configure_logging(settings)  # ASM_LOG_FORMAT=json: JSON lines with Temporal context
    telemetry.configure()  # OTEL_* exporters; before connecting, so the client is traced

    async def main() -> None:
        from agent_session_manager.store import open_store
        from agent_session_manager.worker.connect import connect_temporal

        store = await open_store(settings.database_url)
        client = await connect_temporal(settings.temporal_address or "", settings.namespace)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        out.print(
            f"worker on {settings.temporal_address} queue '{settings.task_queue}'; Ctrl-C stops"
        )
        try:
            async with serve(client, store, settings=settings):
                await stop.wait()
        finally:
            await store.close()
            telemetry.shutdown()  # flush spans/metrics: the CLI exits through os._exit

    _run(main())


# --- demo ---------------------------------------------------------------------------------

DEMO_PROMPTS = (
    "Hello! Please introduce yourself in one sentence.",
    "What did I ask you first?",
    "Summarise our conversation in a few words.",
)


@app.command()
def demo(
    turns: Annotated[int, typer.Option(min=1, max=len(DEMO_PROMPTS))] = len(DEMO_PROMPTS),
) -> None:
    """Run a multi-turn session end to end, streaming tokens live (mock provider unless
    ANTHROPIC_API_KEY is set); starts an embedded server and worker if none is running."""
    provider = "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "mock"

    async def main() -> None:
        async with runtime(allow_embedded=True) as rt:
            where = "embedded dev server" if rt.embedded else rt.address
            out.print(f"[bold]agent-session-manager demo[/] · provider={provider} · {where}")
            view = await rt.client.start_session(
                SessionSpec(
                    agent_id="demo-agent",
                    provider=provider,
                    system_prompt="You are a concise, friendly assistant.",
                    tags=["demo"],
                )
            )
            sid = view.session_id
            out.print(f"session {sid} started ({view.status.value})")
            for n, prompt in enumerate(DEMO_PROMPTS[:turns], start=1):
                out.print(f"\n[bold cyan]you >[/] {prompt}")
                ref = await rt.client.submit_run(sid, prompt)
                out.print("[bold green]agent >[/] ", end="")
                async for piece in rt.client.stream_text(sid, ref.run_id):
                    if isinstance(piece, Reset):
                        out.print(f"\n[yellow](attempt {piece.attempt}: retrying)[/] ", end="")
                    elif isinstance(piece, TextDelta) and piece.kind is None:
                        out.print(piece.text, end="", markup=False, highlight=False)
                result = await rt.client.wait_run(ref.run_id, sid)
                u = result.usage
                out.print(
                    f"\n[dim]turn {n}: {result.status.value} · in {u.input_tokens} / "
                    f"out {u.output_tokens} tokens[/]"
                )
            final = await rt.client.complete_session(sid, reason="demo finished")
            events = await rt.store.last_seq(sid)
            out.print(
                f"\nsession {final.status.value}: {final.run_count} runs, "
                f"{final.usage.total_tokens} tokens "
                f"(in {final.usage.input_tokens}, out {final.usage.output_tokens}), "
                f"{events} events in {rt.store.display_url}",
                soft_wrap=True,
            )
            link = rt.client.ui_link(sid)
            if link:
                out.print(f"Temporal UI: {link}", soft_wrap=True)
            if rt.embedded:
                out.print(
                    "[dim](the embedded server stops with the demo; its history is kept in "
                    f"{Settings().home}/temporal.db — run `asm dev` to browse it in the UI)[/]"
                )

    _run(main())


# --- sessions -----------------------------------------------------------------------------


@session_app.command("start")
def session_start(
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
        multitask_strategy=strategy,  # type: ignore[arg-type]
        activate=not no_activate,
        mock=MockScript.model_validate_json(mock_script) if mock_script else None,
    )

    async def main() -> None:
        async with runtime() as rt:
            view = await rt.client.start_session(spec)
            out.print(view.session_id, highlight=False)
            link = rt.client.ui_link(view.session_id)
            err.print(f"status {view.status.value}" + (f" · {link}" if link else ""))

    _run(main())


@session_app.command("show")
def session_show(session_id: str) -> None:
    """Show a session: status, runs, usage, and its Temporal UI link."""

    async def main() -> None:
        async with runtime() as rt:
            _print_view(await rt.client.describe(session_id), rt.client.ui_link(session_id))

    _run(main())


@session_app.command("ls")
def session_ls(
    status: Annotated[str | None, typer.Option(help="filter by AsmStatus")] = None,
    limit: Annotated[int, typer.Option(min=1)] = 50,
) -> None:
    """List sessions (Temporal visibility, newest first)."""

    async def main() -> None:
        async with runtime() as rt:
            rows = await rt.client.list_sessions(
                f'AsmStatus = "{status}"' if status else None, limit=limit
            )
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

    _run(main())


def _transition_command(name: str, doc: str) -> None:
    def command(
        session_id: str,
        reason: Annotated[str | None, typer.Option(help="recorded in the event")] = None,
    ) -> None:
        async def main() -> None:
            async with runtime() as rt:
                method = {
                    "complete": rt.client.complete_session,
                    "activate": rt.client.activate,
                    "pause": rt.client.pause,
                    "resume": rt.client.resume,
                }[name]
                _print_view(await method(session_id, reason))

        _run(main())

    command.__doc__ = doc
    session_app.command(name)(command)


_transition_command("complete", "Complete a session (no run may be running).")
_transition_command("activate", "Activate a pending session.")
_transition_command("pause", "Pause a session: new runs are held until resume.")
_transition_command("resume", "Resume a paused session.")


@session_app.command("cancel")
def session_cancel(
    session_id: str,
    reason: Annotated[str | None, typer.Option(help="recorded in the event")] = None,
    wait: Annotated[bool, typer.Option(help="wait until the session has ended")] = True,
) -> None:
    """Cancel a session and every run in it."""

    async def main() -> None:
        async with runtime() as rt:
            await rt.client.cancel_session(session_id, reason)
            if wait:
                summary = await rt.client.result(session_id)
                out.print(f"{session_id} {summary.status.value}")
            else:
                out.print(f"cancel requested for {session_id}")

    _run(main())


# --- runs and events ----------------------------------------------------------------------


@app.command("run")
def run_command(
    prompt: str,
    session: Annotated[str, typer.Option("--session", "-s", help="session id")],
    follow: Annotated[bool, typer.Option("--follow", "-f", help="stream the reply")] = False,
    strategy: Annotated[str | None, typer.Option(help="reject|enqueue|interrupt|rollback")] = None,
    wait: Annotated[bool, typer.Option(help="wait for the result")] = True,
) -> None:
    """Submit a run to a session; --follow streams tokens as they are produced."""
    request = RunRequest(prompt=prompt, strategy=strategy)  # type: ignore[arg-type]

    async def main() -> None:
        async with runtime() as rt:
            ref = await rt.client.submit_run(session, request=request)
            err.print(
                f"run {ref.run_id} {ref.status.value}" + (f" ({ref.note})" if ref.note else "")
            )
            if follow:
                async for piece in rt.client.stream_text(session, ref.run_id):
                    if isinstance(piece, Reset):
                        out.print(f"\n(attempt {piece.attempt}: retrying)", style="yellow")
                    elif piece.kind is None:
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
                if result.status.value != "completed":
                    raise SystemExit(1)

    _run(main())


@app.command("events")
def events_command(
    session_id: str,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="keep tailing")] = False,
    after: Annotated[int, typer.Option("--after", min=0, help="start after this seq")] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON event per line")] = False,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these types")] = None,
) -> None:
    """Print a session's events; --follow tails them live (tokens as they stream)."""

    async def main() -> None:
        from agent_session_manager.client.session_client import read_events
        from agent_session_manager.store import open_store

        # Events live in the store: reading them needs no Temporal server.
        store = await open_store(Settings().database_url)
        try:
            # A typo'd id would otherwise follow nothing forever.
            await store.events(session_id, limit=1, must_exist=True)
            async for event in read_events(
                store, session_id, after, run_id=run, types=type_, follow=follow
            ):
                _print_event(event, as_json)
            if not as_json:
                out.print()
        finally:
            await store.close()

    _run(main())


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply the event-store migrations (SQLite or PostgreSQL, from ASM_DATABASE_URL)."""
    from agent_session_manager.store import upgrade

    settings = Settings()
    revision = _run(upgrade(settings.database_url))
    out.print(f"event store at revision {revision}")


# --- operations: setup and audit ---------------------------------------------------------


@app.command("setup")
def setup_command(
    create_namespace: Annotated[
        bool, typer.Option("--create-namespace", help="register the namespace if it is missing")
    ] = False,
    retention_days: Annotated[
        int, typer.Option(min=1, help="retention of a namespace created by --create-namespace")
    ] = 7,
    wait: Annotated[
        float, typer.Option("--wait", min=0, help="seconds to retry while Temporal is unreachable")
    ] = 0,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Prepare a Temporal cluster and the event store (idempotent): check the namespace,
    register the Asm* search attributes, apply the event-store migrations; report what changed."""
    from datetime import timedelta

    from agent_session_manager.worker.connect import connect_when_ready
    from agent_session_manager.worker.dev_server import read_dev_record
    from agent_session_manager.worker.setup import run_setup

    settings = Settings()

    async def main() -> None:
        dev = read_dev_record(settings.home)
        address = settings.temporal_address or (dev.address if dev else "127.0.0.1:7233")
        client = await connect_when_ready(address, settings.namespace, wait=wait)
        report = await run_setup(
            client,
            database_url=settings.database_url,
            namespace=settings.namespace,
            create_namespace=create_namespace,
            retention=timedelta(days=retention_days),
        )
        if as_json:
            print(json.dumps(report.to_dict()), flush=True)
        else:
            out.print(f"Temporal {address}", highlight=False)
            for line in report.lines():
                out.print(line, highlight=False)

    _run(main())


@app.command("audit")
def audit_command(
    session_id: Annotated[str | None, typer.Argument(help="session id")] = None,
    run: Annotated[str | None, typer.Option("--run", help="only this run")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO time or relative: 30s, 15m, 2h, 7d")
    ] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="only these types")] = None,
    jsonl: Annotated[bool, typer.Option("--jsonl", help="JSON Lines on stdout")] = False,
    output: Annotated[
        str | None, typer.Option("--output", "-o", help="write JSON Lines to this file")
    ] = None,
    identity: Annotated[
        bool, typer.Option(help="read client identities from Temporal history")
    ] = True,
) -> None:
    """The audit trail of a session or run: status changes, who/what caused them
    (update name, client identity), tool calls and errors; exportable as JSON Lines."""
    from agent_session_manager.client.audit import audit_log, format_entry, parse_since, write_jsonl
    from agent_session_manager.store import open_store
    from agent_session_manager.worker.connect import connect_temporal
    from agent_session_manager.worker.dev_server import read_dev_record

    if session_id is None and run is None:
        raise AsmError("validation_error", "give a session id or --run RUN_ID")
    settings = Settings()
    since_at = parse_since(since) if since else None

    async def main() -> list[Any]:
        store = await open_store(settings.database_url)
        try:
            temporal = None
            dev = read_dev_record(settings.home)
            address = settings.temporal_address or (dev.address if dev else None)
            if identity and address:
                temporal = await connect_temporal(address, settings.namespace)
            elif identity:
                err.print("no Temporal server: identities are not shown")
            return await audit_log(
                store, session_id, run_id=run, since=since_at, types=type_, temporal=temporal
            )
        finally:
            await store.close()

    entries = _run(main())
    if output:
        with open(output, "w", encoding="utf-8") as fp:
            n = write_jsonl(entries, fp)
        err.print(f"{n} audit entries written to {output}")
    elif jsonl:
        write_jsonl(entries, sys.stdout)
        sys.stdout.flush()
    else:
        for entry in entries:
            out.print(format_entry(entry), markup=False, highlight=False)


# --- entry point --------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, then exit with a reliable status."""
    code = 0
    try:
        # Standalone mode: typer prints usage errors itself and exits 2.
        app(args=argv, standalone_mode=True)
    except AsmError as exc:
        err.print(f"[red]error[/] [bold]{exc.code}[/]: {exc.message}", highlight=False)
        code = 1
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception:
        import traceback

        traceback.print_exc()
        err.print(
            "[red]internal error[/]: please report this with the trace above", highlight=False
        )
        code = 1
    _exit(code)


def _exit(code: int | None) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
