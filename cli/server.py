"""``asm dev``, ``asm worker`` and ``asm demo``: the commands that run a worker (and a server)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer
from typer._click.exceptions import UsageError  # typer vendors click

from agent_session_manager.cli.options import current, shared
from agent_session_manager.cli.output import out, print_json
from agent_session_manager.cli.project import find_project, require_store
from agent_session_manager.cli.runtime import DEV_UI_PORT, command_settings, runtime
from agent_session_manager.client.session_client import Reset
from agent_session_manager.core.contract import SessionSpec
from agent_session_manager.core.errors import error
from agent_session_manager.observability import config as telemetry
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.connect import connect_temporal
from agent_session_manager.worker.dev_server import (
    clear_dev_record,
    port_is_free,
    read_dev_record,
    start_dev_server,
    temporal_binary,
    write_dev_record,
)
from agent_session_manager.worker.observe import configure_observability
from agent_session_manager.worker.worker import serve


@shared(connects=False)
def dev(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Temporal frontend port")] = 7233,
    ui_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Temporal Web UI port")
    ] = DEV_UI_PORT,
) -> None:
    """Start the embedded Temporal dev server and a worker for this project, until Ctrl-C.

    Its data (SQLite) goes to the project's .asm/ (the nearest one up from here, else
    ./.asm/). Refused, exit 1, when this project's dev server already runs or a port is busy.
    """
    if port == ui_port:
        raise typer.BadParameter("must differ from --port", param_hint="'--ui-port'")
    project = find_project()
    settings = command_settings(project)
    home = str(project.home)
    temporal_binary()  # without the dev-server extra: say so before creating any file
    # Refused before anything is created or started: a second server for the same store, or a
    # server whose port someone else holds (our worker would join *their* task queue).
    if (running := read_dev_record(home)) is not None:
        raise error(
            "already_exists",
            f"`asm dev` already runs for this project ({home}): Temporal {running.address}, "
            f"UI {running.ui_url} (pid {running.pid}); use it, or stop it first",
            details={"home": home, "address": running.address, "pid": running.pid},
        )
    for taken in (port, ui_port):
        if not port_is_free(taken):
            raise error(
                "already_exists",
                f"127.0.0.1:{taken} is already in use (another `asm dev` or Temporal server?): "
                "stop it, or choose free ports with --port and --ui-port",
                details={"port": taken},
            )
    configure_observability(settings)  # what `asm worker` honours, its worker honours too

    async def main() -> None:
        await upgrade(settings.database_url)
        store = await open_store(settings.database_url)
        if not current.json:
            out.print(
                f"starting Temporal dev server on 127.0.0.1:{port} (data in {home}/)…",
                soft_wrap=True,
            )
        env = await start_dev_server(home=home, port=port, ui_port=ui_port)
        address, ui_url = f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}"
        write_dev_record(home, address, ui_url)
        if current.json:
            print_json(
                {
                    "status": "ready",
                    "address": address,
                    "ui_url": ui_url,
                    "home": home,
                    "task_queue": settings.task_queue,
                    "database": store.display_url,
                }
            )
        else:
            out.print(f"[green]ready[/]  Temporal: {address}   UI: {ui_url}")
            out.print(
                f"worker on task queue '{settings.task_queue}', events in {store.display_url}"
            )
            out.print("Ctrl-C to stop.")
        stop = _stop_on_signals()
        try:
            # The worker's own client: traced and with the Prometheus runtime, as `asm worker`'s.
            client = await connect_temporal(env.address, env.client.namespace)
            async with serve(client, store, settings=settings):
                await stop.wait()
                if not current.json:
                    out.print("stopping…")
        finally:
            clear_dev_record(settings.home)
            await env.shutdown()
            await store.close()
            telemetry.shutdown()  # flush spans/metrics: the CLI exits through os._exit

    asyncio.run(main())


@shared()
def worker() -> None:
    """Run a worker against --address (or ASM_TEMPORAL_ADDRESS, TEMPORAL_ADDRESS): a cluster or
    `asm dev`; its event store is ASM_DATABASE_URL, else the project's .asm/asm.db."""
    project = find_project()
    settings = command_settings(project)
    address = settings.temporal_address
    if not address:
        raise UsageError(
            "no Temporal address: give --address HOST:PORT (or set ASM_TEMPORAL_ADDRESS or "
            "TEMPORAL_ADDRESS), or use `asm dev` for the embedded server with its own worker"
        )
    require_store(project, address)
    configure_observability(settings)  # ASM_LOG_*, OTEL_*, ASM_PROMETHEUS_BIND

    async def main() -> None:
        store = await open_store(settings.database_url)
        client = await connect_temporal(address, settings.namespace)
        stop = _stop_on_signals()
        if current.json:
            print_json({"status": "ready", "address": address, "task_queue": settings.task_queue})
        else:
            out.print(f"worker on {address} queue '{settings.task_queue}'; Ctrl-C stops")
        try:
            async with serve(client, store, settings=settings):
                await stop.wait()
        finally:
            await store.close()
            telemetry.shutdown()  # flush spans/metrics: the CLI exits through os._exit

    asyncio.run(main())


def _stop_on_signals() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM: a server stops cleanly on either."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


DEMO_PROMPTS = (
    "Hello! Please introduce yourself in one sentence.",
    "What did I ask you first?",
    "Summarise our conversation in a few words.",
)


@shared()
def demo(
    turns: Annotated[int, typer.Option(min=1, max=len(DEMO_PROMPTS))] = len(DEMO_PROMPTS),
) -> None:
    """Run a multi-turn session end to end, streaming tokens live (mock provider unless
    ANTHROPIC_API_KEY is set); starts an embedded server and worker if none is running.
    With -o json, prints only a summary object."""
    provider = "anthropic" if os.environ.get("ANTHROPIC_API_KEY") else "mock"
    # -o json: the summary only (the transcript is for people).
    say = out.print if not current.json else (lambda *_a, **_k: None)

    async def main() -> None:
        async with runtime(allow_embedded=True) as rt:
            where = "embedded dev server" if rt.embedded else rt.address
            say(f"[bold]agent-session-manager demo[/] · provider={provider} · {where}")
            view = await rt.client.start_session(
                SessionSpec(
                    agent_id="demo-agent",
                    provider=provider,
                    system_prompt="You are a concise, friendly assistant.",
                    tags=["demo"],
                )
            )
            sid = view.session_id
            say(f"session {sid} started ({view.status.value})")
            for n, prompt in enumerate(DEMO_PROMPTS[:turns], start=1):
                say(f"\n[bold cyan]you >[/] {prompt}")
                ref = await rt.client.submit_run(sid, prompt)
                say("[bold green]agent >[/] ", end="")
                async for piece in rt.client.stream_text(sid, ref.run_id):
                    if isinstance(piece, Reset):
                        say(f"\n[yellow](attempt {piece.attempt}: retrying)[/] ", end="")
                    else:
                        say(piece.text, end="", markup=False, highlight=False)
                result = await rt.client.wait_run(ref.run_id, sid)
                u = result.usage
                say(
                    f"\n[dim]turn {n}: {result.status.value} · in {u.input_tokens} / "
                    f"out {u.output_tokens} tokens[/]"
                )
            final = await rt.client.complete_session(sid, reason="demo finished")
            store = rt.client.require_store()
            events = await store.last_seq(sid)
            link = rt.client.ui_link(sid)
            if current.json:
                print_json(
                    {
                        "session_id": sid,
                        "status": final.status.value,
                        "runs": final.run_count,
                        "usage": final.usage.model_dump(mode="json"),
                        "events": events,
                        "database": store.display_url,
                        "ui_link": link,
                    }
                )
                return
            out.print(
                f"\nsession {final.status.value}: {final.run_count} runs, "
                f"{final.usage.total_tokens} tokens "
                f"(in {final.usage.input_tokens}, out {final.usage.output_tokens}), "
                f"{events} events in {store.display_url}",
                soft_wrap=True,
            )
            if link:
                out.print(f"Temporal UI: {link}", soft_wrap=True)
            if rt.embedded:
                out.print(
                    "[dim](the embedded server stops with the demo; its history is kept in "
                    f"{find_project().home}/temporal.db — run `asm dev` to browse it in the UI)[/]"
                )

    asyncio.run(main())
