"""``asm dev``, ``asm worker`` and ``asm demo``: the commands that run a worker (and a server)."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Annotated

import typer

from agent_session_manager.cli.output import out
from agent_session_manager.cli.runtime import DEV_UI_PORT, runtime
from agent_session_manager.client.session_client import Reset
from agent_session_manager.core.contract import SessionSpec
from agent_session_manager.core.errors import AsmError
from agent_session_manager.observability import config as telemetry
from agent_session_manager.store import open_store, upgrade
from agent_session_manager.worker.connect import connect_temporal
from agent_session_manager.worker.dev_server import (
    clear_dev_record,
    start_dev_server,
    temporal_binary,
    write_dev_record,
)
from agent_session_manager.worker.observe import configure_observability
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve


def dev(
    port: Annotated[int, typer.Option(help="Temporal frontend port")] = 7233,
    ui_port: Annotated[int, typer.Option(help="Temporal Web UI port")] = DEV_UI_PORT,
) -> None:
    """Start the embedded Temporal dev server (SQLite in .asm/) and a worker, until Ctrl-C."""
    settings = Settings()
    temporal_binary()  # without the dev-server extra: say so before creating any file
    configure_observability(settings)  # what `asm worker` honours, its worker honours too

    async def main() -> None:
        await upgrade(settings.database_url)
        store = await open_store(settings.database_url)
        out.print(f"starting Temporal dev server on 127.0.0.1:{port} (data in {settings.home}/)…")
        env = await start_dev_server(home=settings.home, port=port, ui_port=ui_port)
        out.print(f"[green]ready[/]  Temporal: 127.0.0.1:{port}   UI: http://127.0.0.1:{ui_port}")
        write_dev_record(settings.home, f"127.0.0.1:{port}", f"http://127.0.0.1:{ui_port}")
        out.print(f"worker on task queue '{settings.task_queue}', events in {store.display_url}")
        out.print("Ctrl-C to stop.")
        stop = _stop_on_signals()
        try:
            # The worker's own client: traced and with the Prometheus runtime, as `asm worker`'s.
            client = await connect_temporal(env.address, env.client.namespace)
            async with serve(client, store, settings=settings):
                await stop.wait()
                out.print("stopping…")
        finally:
            clear_dev_record(settings.home)
            await env.shutdown()
            await store.close()
            telemetry.shutdown()  # flush spans/metrics: the CLI exits through os._exit

    asyncio.run(main())


def worker() -> None:
    """Run a worker against ASM_TEMPORAL_ADDRESS (a cluster or `asm dev`)."""
    settings = Settings()
    address = settings.temporal_address
    if not address:
        raise AsmError(
            "validation_error",
            "set ASM_TEMPORAL_ADDRESS (e.g. 127.0.0.1:7233), or use `asm dev` for the "
            "embedded server with its own worker",
        )
    configure_observability(settings)  # ASM_LOG_*, OTEL_*, ASM_PROMETHEUS_BIND

    async def main() -> None:
        store = await open_store(settings.database_url)
        client = await connect_temporal(address, settings.namespace)
        stop = _stop_on_signals()
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
                    else:
                        out.print(piece.text, end="", markup=False, highlight=False)
                result = await rt.client.wait_run(ref.run_id, sid)
                u = result.usage
                out.print(
                    f"\n[dim]turn {n}: {result.status.value} · in {u.input_tokens} / "
                    f"out {u.output_tokens} tokens[/]"
                )
            final = await rt.client.complete_session(sid, reason="demo finished")
            store = rt.client.require_store()
            events = await store.last_seq(sid)
            out.print(
                f"\nsession {final.status.value}: {final.run_count} runs, "
                f"{final.usage.total_tokens} tokens "
                f"(in {final.usage.input_tokens}, out {final.usage.output_tokens}), "
                f"{events} events in {store.display_url}",
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

    asyncio.run(main())
