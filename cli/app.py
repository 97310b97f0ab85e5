"""The ``asm`` command line: the synchronous face of :class:`client.SessionClient`.

This module is the command table and the exit: each concept's commands live in their own
module (:mod:`.sessions`, :mod:`.runs`, :mod:`.server`, :mod:`.admin`).

Exit codes: 0 success, 1 a reported error (taxonomy code and what to do next), 2 usage,
75 (``EX_TEMPFAIL``) a component is unreachable (Temporal: ``temporal_unavailable``; the event
store: ``storage_connection_failed``), so the same command may work later, 130 interrupted.
With ``--json``, ``--jsonl`` or ``-o json`` an error is one JSON object on stderr:
``{"error": {code, …}}``.

The process ends through ``os._exit`` after flushing, because a process that
used a Temporal client can abort at interpreter exit (temporalio/sdk-python#300) and turn a
success into exit 134.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import traceback

import typer
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig

from agent_session_manager.cli import (
    admin,
    approvals,
    keys,
    limits,
    runs,
    serve,
    server,
    sessions,
    usage,
)
from agent_session_manager.cli.output import err
from agent_session_manager.client.outages import OUTAGE_CODES
from agent_session_manager.core.errors import AsmError

#: sysexits.h: "temporary failure, the user is invited to retry".
EX_TEMPFAIL = 75

app = typer.Typer(
    name="asm",
    help="agent-session-manager: durable agent sessions, runs and events on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(server.dev)
app.command()(server.worker)
app.command()(server.demo)
app.add_typer(sessions.app, name="session")
app.add_typer(approvals.app, name="approvals")
app.add_typer(admin.db_app, name="db")
app.command()(runs.run)
app.command()(runs.events)
app.command()(admin.setup)
app.command()(admin.audit)
app.command()(usage.usage)
app.command()(serve.serve)
app.add_typer(keys.app, name="keys")
app.command()(limits.limits)


def wants_json(args: list[str]) -> bool:
    """Whether the command line asks for JSON (``--json``, ``--jsonl``, ``-o json``)."""
    pairs = itertools.pairwise(args)
    return (
        "--json" in args
        or "--jsonl" in args
        or "--output=json" in args
        or "-ojson" in args
        or any(a in ("-o", "--output") and b == "json" for a, b in pairs)
    )


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, then exit with a reliable status."""
    code = 0
    args = sys.argv[1:] if argv is None else argv
    sdk_logs_to_stderr()
    try:
        # Standalone mode: typer prints usage errors itself and exits 2.
        app(args=argv, standalone_mode=True)
    except AsmError as exc:
        if wants_json(args):
            print(json.dumps({"error": exc.to_dict()}, default=str), file=sys.stderr)
        else:
            err.print(f"[red]error[/] [bold]{exc.code}[/]: ", end="", highlight=False)
            err.print(exc.message, markup=False, highlight=False)
        code = EX_TEMPFAIL if exc.code in OUTAGE_CODES else 1
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except Exception:
        traceback.print_exc()
        err.print(
            "[red]internal error[/]: please report this with the trace above", highlight=False
        )
        code = 1
    _exit(code)


def sdk_logs_to_stderr() -> None:
    """Send the Temporal SDK's own log lines through Python logging (so to stderr).

    Its default runtime prints them to stdout (e.g. ``WARN … gRPC call … retried 5 times``
    while the server is down), where they would corrupt ``--json`` output a script reads.
    """
    Runtime.set_default(
        Runtime(
            telemetry=TelemetryConfig(
                logging=LoggingConfig(
                    filter=LoggingConfig.default.filter,
                    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.core")),
                )
            )
        ),
        error_if_already_set=False,
    )


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
