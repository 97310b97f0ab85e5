"""Where the CLI and the demo get a Temporal connection, an event store and (maybe) a worker.

No configured address (``--address``, ``ASM_TEMPORAL_ADDRESS``, ``TEMPORAL_ADDRESS``: see
:func:`cli.project.cli_settings`) means "the embedded default": use the ``asm dev``
server of this project's ``.asm/`` (found from any subdirectory, see :mod:`.project`) if one is
running, so its worker and we share one event store; else (for commands that may, like
``asm demo``) start one in-process.

Commands that only talk to Temporal (``asm session …``) open no event store, so a database
outage cannot fail them. The waiting calls report outages on stderr as they ride them out.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

from temporalio.service import RetryConfig

from agent_session_manager.cli.options import current
from agent_session_manager.cli.output import err
from agent_session_manager.cli.project import Project, cli_settings, find_project, require_store
from agent_session_manager.client.outages import Outage, Patience
from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core.errors import error
from agent_session_manager.observability.config import configure as configure_telemetry
from agent_session_manager.observability.config import flush as flush_telemetry
from agent_session_manager.observability.temporal_plugin import instrument_client
from agent_session_manager.store import EventStore, open_store, upgrade
from agent_session_manager.worker.connect import connect_temporal
from agent_session_manager.worker.dev_server import read_dev_record, start_dev_server
from agent_session_manager.worker.settings import Settings
from agent_session_manager.worker.worker import serve

DEV_UI_PORT = 8233


def report_outage(outage: Outage) -> None:
    """A waiting command's progress line while a component is down (stderr: not the result)."""
    err.print(str(outage), style="yellow", markup=False, highlight=False, soft_wrap=True)


#: The SDK's own retries inside one call, for the CLI: ~3 s, not its default ~10 s, so a
#: one-shot command fails soon and a waiting one says within seconds that Temporal is down
#: (then waits with :data:`CLI_PATIENCE`, saying so).
CLI_SDK_RETRIES = RetryConfig(max_elapsed_time_millis=3000, max_interval_millis=1000)

#: How the CLI's waiting commands (``asm run``, ``asm events -f``, ``asm session cancel``)
#: ride out an outage: five minutes, saying so on stderr.
CLI_PATIENCE = Patience(on_progress=report_outage)


@dataclass
class Runtime:
    """A connected client plus what was started for it."""

    client: SessionClient
    store: EventStore | None
    """None for a command that asked for Temporal only."""
    address: str
    ui_url: str | None
    embedded: bool


@asynccontextmanager
async def runtime(
    *,
    allow_embedded: bool = False,
    with_worker: bool = False,
    with_store: bool = True,
) -> AsyncIterator[Runtime]:
    """Connect (starting an embedded server and a worker when asked) and clean up after;
    ``with_store=False`` opens no event store (for commands that are Temporal calls)."""
    project = find_project()
    settings = command_settings(project)
    if (with_store or with_worker) and not allow_embedded:
        # Before connecting: a command must not create an empty store as it fails.
        require_store(project, settings.temporal_address)
    configure_telemetry()  # OTEL_* variables (no-op by default): CLI calls are traced too
    async with AsyncExitStack() as stack:
        stack.callback(flush_telemetry)  # the CLI leaves through os._exit: flush spans first
        address = settings.temporal_address
        ui_url = settings.ui_url
        embedded = False
        if address is None and (dev := read_dev_record(settings.home)) is not None:
            address, ui_url = dev.address, ui_url or dev.ui_url
        if address is None:
            if not allow_embedded:
                raise error(
                    "temporal_unavailable",
                    f"no Temporal server: no `asm dev` runs for this project ({settings.home}); "
                    "start one with `asm dev`, or give --address (or set TEMPORAL_ADDRESS)",
                    details={"home": settings.home},
                )
            # Ports of its choosing: it starts again on fresh ones if one is taken meanwhile.
            env = await start_dev_server(home=settings.home)
            stack.push_async_callback(env.shutdown)
            temporal = instrument_client(env.client)
            address = temporal.service_client.config.target_host
            ui_url = env.ui_url
            embedded = True
            with_worker = True
        else:
            temporal = await connect_temporal(
                address, settings.namespace, retry_config=CLI_SDK_RETRIES
            )
        if allow_embedded:
            # The one-command demo prepares what it needs; every other command only checks
            # the schema (open_store says to run `asm db upgrade`) instead of migrating on
            # each call.
            await upgrade(settings.database_url)
        store: EventStore | None = None
        if with_store or with_worker:
            store = await open_store(settings.database_url)
            stack.push_async_callback(store.close)
            if with_worker:
                await stack.enter_async_context(serve(temporal, store, settings=settings))
        client = SessionClient(
            temporal,
            store,
            task_queue=settings.task_queue,
            ui_url=ui_url,
            patience=CLI_PATIENCE,
        )
        yield Runtime(client=client, store=store, address=address, ui_url=ui_url, embedded=embedded)


def command_settings(project: Project | None = None) -> Settings:
    """The settings of the command being run: the environment's, the project's absolute paths,
    and ``--address``/``--namespace`` over the environment."""
    return cli_settings(project or find_project(), current.address, current.namespace)
