"""Worker logging: text or JSON lines (``ASM_LOG_FORMAT=json``), with Temporal context and
provider secrets redacted.

Every record passes two filters on the handler (so records of every logger get them):
:class:`~observability.log_context.ContextFilter` (session, run, workflow and activity ids) and
:class:`~observability.redaction.RedactingFilter` (provider secrets and the database password).

The module is ``log_config`` rather than ``logging`` so it cannot shadow the standard library.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import IO

from agent_session_manager.core.errors import error
from agent_session_manager.observability.log_context import ContextFilter
from agent_session_manager.observability.log_format import JsonFormatter, TextFormatter
from agent_session_manager.observability.redaction import RedactingFilter, secret_values
from agent_session_manager.worker.settings import SECRET_ENV_VARS, Settings

_HANDLER_NAME = "asm-worker"


def configure_logging(
    settings: Settings | None = None,
    *,
    stream: IO[str] | None = None,
    environ: Mapping[str, str] | None = None,
) -> logging.Handler:
    """Install the worker's log handler on the root logger (replacing an earlier one).

    Level from ``ASM_LOG_LEVEL``, format from ``ASM_LOG_FORMAT`` (``json`` or ``text``).
    Returns the handler (tests attach it to a buffer through ``stream``).
    """
    settings = settings or Settings()
    fmt = settings.log_format.strip().lower()
    if fmt not in ("json", "text"):
        raise error(
            "validation_error",
            f"ASM_LOG_FORMAT={settings.log_format!r}: use json or text",
            details={"value": settings.log_format},
        )
    env = os.environ if environ is None else environ
    redactor = RedactingFilter(secret_values(SECRET_ENV_VARS, env, settings.database_url))
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(ContextFilter())
    handler.addFilter(redactor)
    handler.setFormatter(JsonFormatter(redactor) if fmt == "json" else TextFormatter(redactor))
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER_NAME]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    return handler
