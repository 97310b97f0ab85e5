"""The ``asm`` command line: the synchronous face of :class:`client.SessionClient`.

This module is the command table and the exit: each concept's commands live in their own
module (:mod:`.sessions`, :mod:`.runs`, :mod:`.server`, :mod:`.admin`).

Exit codes: 0 success, 1 a reported error (taxonomy code and what to do next: e.g.
``session_not_found``, ``run_not_found``, ``invalid_transition``, a run that did not complete),
2 usage (a bad option or value: one line saying what is valid), 75 (``EX_TEMPFAIL``) a component
is unreachable (Temporal: ``temporal_unavailable``; the event store:
``storage_connection_failed``), so the same command may work later, 130 interrupted.
With ``-o json`` an error is one JSON object on stderr: ``{"error": {code, …}}`` (a usage error
has the code ``usage``).

The process ends through ``os._exit`` after flushing, because a process that
used a Temporal client can abort at interpreter exit (temporalio/sdk-python#300) and turn a
success into exit 134.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback

import typer
from pydantic import ValidationError
from temporalio.runtime import LogForwardingConfig, LoggingConfig, Runtime, TelemetryConfig
from typer._click.exceptions import (
    ClickException,
    NoArgsIsHelpError,
    UsageError,
)  # typer vendors click

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
from agent_session_manager.cli.options import current
from agent_session_manager.cli.output import err
from agent_session_manager.client.outages import OUTAGE_CODES
from agent_session_manager.core.errors import AsmError

#: sysexits.h: "temporary failure, the user is invited to retry".
EX_TEMPFAIL = 75

app = typer.Typer(
    name="asm",
    help="agent-session-manager: durable agent sessions, runs and events on Temporal.",
    no_args_is_help=True,
    add_completion=True,  # --install-completion / --show-completion (bash, zsh, fish, …)
    pretty_exceptions_enable=False,
)
app.command()(server.dev)
app.command()(server.worker)
app.command()(server.demo)
app.add_typer(sessions.app, name="session")
app.add_typer(approvals.app, name="approvals")
app.add_typer(admin.db_app, name="db")
app.add_typer(runs.app, name="run")
app.command()(runs.events)
app.command()(admin.setup)
app.command()(admin.audit)
app.command()(usage.usage)
app.command()(serve.serve)
app.add_typer(keys.app, name="keys")
app.command()(limits.limits)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app, then exit with a reliable status."""
    sdk_logs_to_stderr()
    _exit(execute(sys.argv[1:] if argv is None else argv))


def execute(args: list[str]) -> int:
    """Run one command line; its exit code. Every error is printed here, never a traceback
    unless it is a bug (then with a request to report it)."""
    code = 0
    current.reset()
    try:
        # Not standalone: usage errors come here, to be printed as one line (not a panel).
        result = app(args=args, prog_name="asm", standalone_mode=False)
        code = result if isinstance(result, int) else 0
        if code == 130:
            err.print("interrupted")
    except NoArgsIsHelpError as exc:  # a group without its subcommand: typer printed its help
        if exc.format_message().strip():
            err.print(exc.format_message(), markup=False, highlight=False)
        code = 2
    except UsageError as exc:
        report_usage_error(exc, args)
        code = 2
    except ClickException as exc:  # e.g. a file option naming a missing file
        report_usage_error(exc, args)
        code = exc.exit_code
    except typer.Abort:
        err.print("aborted")
        code = 130
    except ValidationError as exc:
        # A model refused a value no option converter checked: still a usage error, one line.
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        report_usage_error(UsageError(f"invalid value for {where}: {first['msg']}"), args)
        code = 2
    except AsmError as exc:
        if current.json or wants_json(args):
            print(json.dumps({"error": exc.to_dict()}, default=str), file=sys.stderr)
        else:
            err.print(f"[red]error[/] [bold]{exc.code}[/]: ", end="", highlight=False)
            err.print(exc.message, markup=False, highlight=False, soft_wrap=True)
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
    return code


def wants_json(args: list[str]) -> bool:
    """Whether the command line asked for JSON (read from the words: a usage error comes
    before the options are parsed)."""
    for i, word in enumerate(args):
        if word in ("--json", "--jsonl", "-ojson", "--output=json"):
            return True
        if word in ("-o", "--output") and args[i + 1 : i + 2] == ["json"]:
            return True
    return False


def report_usage_error(exc: ClickException, args: list[str]) -> None:
    """One line on stderr: what was wrong and where to read what is valid."""
    # One line; typer's choice/parser errors come prefixed by pydantic's "Value error, ".
    message = " ".join(exc.format_message().replace("Value error, ", "").split())
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else "asm"
    if wants_json(args):
        usage = {"code": "usage", "message": message, "command": command}
        print(json.dumps({"error": usage}), file=sys.stderr)
        return
    err.print(
        f"{command}: {message} (see `{command} --help`)",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )


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
