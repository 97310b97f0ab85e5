"""The ``asm`` command line: the synchronous face of :class:`client.SessionClient`.

This module is the command table and the exit: each concept's commands live in their own
module (:mod:`.sessions`, :mod:`.runs`, :mod:`.server`, :mod:`.admin`).

Exit codes: 0 success, 1 a reported error (taxonomy code and what to do next), 2 usage,
130 interrupted. The process ends through ``os._exit`` after flushing, because a process that
used a Temporal client can abort at interpreter exit (temporalio/sdk-python#300) and turn a
success into exit 134.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from rich.markup import escape

from agent_session_manager.cli import admin, runs, server, sessions
from agent_session_manager.cli.output import err
from agent_session_manager.core.errors import AsmError

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
app.add_typer(admin.db_app, name="db")
app.command()(runs.run)
app.command()(runs.events)
app.command()(admin.setup)
app.command()(admin.audit)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, then exit with a reliable status."""
    code = 0
    try:
        # Standalone mode: typer prints usage errors itself and exits 2.
        app(args=argv, standalone_mode=True)
    except AsmError as exc:
        # Escaped: a message may name an extra (`…[dev-server]`), which rich takes for markup.
        err.print(f"[red]error[/] [bold]{exc.code}[/]: {escape(exc.message)}", highlight=False)
        code = 1
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


def _exit(code: int) -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
