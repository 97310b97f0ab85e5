"""Worker logging: text or JSON lines (``ASM_LOG_FORMAT=json``), with Temporal context and
provider secrets redacted.

Every record passes two filters on the handler (so records of every logger get them):

* :class:`ContextFilter` adds ``session_id``, ``run_id``, ``workflow_id``, ``workflow_run_id``,
  ``workflow_type``, ``activity_id``, ``activity_type``, ``attempt``, ``task_queue`` and
  ``namespace`` where known: from the running activity (``activity.info()``) or workflow
  (``workflow.info()``, or the ``temporal_workflow`` details Temporal's workflow logger adds),
  and from :func:`log_context` (the provider activity binds the run's session there). Ids
  follow the contract: ``session-<id>`` and ``run-<id>`` workflow ids give the session and
  run ids, a run's parent workflow gives its session.
* :class:`RedactingFilter` replaces the values of provider secret variables (and the event
  store's database password) with ``[REDACTED]`` in the message, its arguments and the
  formatted exception, so a secret that reaches a log call anyway never reaches the output.

The module is ``log_config`` rather than ``logging`` so it cannot shadow the standard library.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import IO, Any

from temporalio import activity, workflow

from agent_session_manager.worker.settings import SECRET_ENV_VARS, Settings

CONTEXT_FIELDS = (
    "session_id",
    "run_id",
    "workflow_id",
    "workflow_run_id",
    "workflow_type",
    "activity_id",
    "activity_type",
    "attempt",
    "task_queue",
    "namespace",
)
REDACTED = "[REDACTED]"
#: Shorter values are not redacted: replacing "1" or "abc" everywhere would garble logs and
#: such values are not secrets anyway.
MIN_SECRET_LENGTH = 6
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")

_bound: contextvars.ContextVar[Mapping[str, Any] | None] = contextvars.ContextVar(
    "asm_log_context", default=None
)


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Add ``fields`` (e.g. ``session_id``) to every record logged inside the block."""
    bound = {**(_bound.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _bound.set(bound)
    try:
        yield
    finally:
        _bound.reset(token)


def _ids_from_workflow_id(workflow_id: str | None, out: dict[str, Any]) -> None:
    if not workflow_id:
        return
    if workflow_id.startswith("session-"):
        out.setdefault("session_id", workflow_id.removeprefix("session-"))
    elif workflow_id.startswith("run-"):
        out.setdefault("run_id", workflow_id.removeprefix("run-"))


def current_context() -> dict[str, Any]:
    """The Temporal context of the calling code (activity, workflow, or bound fields)."""
    out: dict[str, Any] = dict(_bound.get() or {})
    try:
        info = activity.info()
    except RuntimeError:
        info = None
    if info is not None:
        out.setdefault("activity_id", info.activity_id)
        out.setdefault("activity_type", info.activity_type)
        out.setdefault("attempt", info.attempt)
        out.setdefault("workflow_id", info.workflow_id)
        out.setdefault("workflow_run_id", info.workflow_run_id)
        out.setdefault("workflow_type", info.workflow_type)
        out.setdefault("task_queue", info.task_queue)
        out.setdefault("namespace", info.workflow_namespace)
        _ids_from_workflow_id(info.workflow_id, out)
        return out
    if workflow.in_workflow():
        try:
            winfo = workflow.info()
        except Exception:  # outside a workflow task (e.g. during sandbox import)
            return out
        out.setdefault("workflow_id", winfo.workflow_id)
        out.setdefault("workflow_run_id", winfo.run_id)
        out.setdefault("workflow_type", winfo.workflow_type)
        out.setdefault("attempt", winfo.attempt)
        out.setdefault("task_queue", winfo.task_queue)
        out.setdefault("namespace", winfo.namespace)
        _ids_from_workflow_id(winfo.workflow_id, out)
        if winfo.parent is not None:
            _ids_from_workflow_id(winfo.parent.workflow_id, out)
    return out


class ContextFilter(logging.Filter):
    """Put the Temporal context (see the module docstring) on each record as attributes."""

    def filter(self, record: logging.LogRecord) -> bool:
        ctx = current_context()
        details = getattr(record, "temporal_workflow", None)
        if isinstance(details, dict):
            ctx.setdefault("workflow_id", details.get("workflow_id"))
            ctx.setdefault("workflow_run_id", details.get("run_id"))
            ctx.setdefault("workflow_type", details.get("workflow_type"))
            _ids_from_workflow_id(details.get("workflow_id"), ctx)
        details = getattr(record, "temporal_activity", None)
        if isinstance(details, dict):
            ctx.setdefault("activity_id", details.get("activity_id"))
            ctx.setdefault("activity_type", details.get("activity_type"))
            ctx.setdefault("attempt", details.get("attempt"))
            ctx.setdefault("workflow_id", details.get("workflow_id"))
            _ids_from_workflow_id(details.get("workflow_id"), ctx)
        for key in CONTEXT_FIELDS:
            value = ctx.get(key)
            if value is not None and getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def secret_values(
    environ: Mapping[str, str] | None = None, settings: Settings | None = None
) -> list[str]:
    """The values to keep out of logs: provider secrets and the database password."""
    env = os.environ if environ is None else environ
    values = [
        env[name]
        for name in SECRET_ENV_VARS
        if any(m in name for m in _SECRET_MARKERS) and env.get(name)
    ]
    url = settings.database_url if settings is not None else env.get("ASM_DATABASE_URL", "")
    if url:
        try:
            from sqlalchemy.engine import make_url

            password = make_url(url).password
        except Exception:
            password = None
        if password:
            values.append(str(password))
    return sorted({v for v in values if len(v) >= MIN_SECRET_LENGTH}, key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """Replace secret values in a record's message, arguments and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the formatter to report
            return True
        redacted = self.redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self.redact(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redact(record.stack_info)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, Temporal context, exception."""

    def __init__(self, redactor: RedactingFilter | None = None) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in CONTEXT_FIELDS:
            value = getattr(record, key, None)
            if value is not None:
                entry[key] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        line = json.dumps(entry, default=str, ensure_ascii=False)
        # Last line of defence: anything that slipped into a context field is redacted too.
        return self.redactor.redact(line) if self.redactor else line


class TextFormatter(logging.Formatter):
    """Human-readable lines with the ids that are known, e.g. ``[session=… run=… a2]``."""

    def __init__(self, redactor: RedactingFilter | None = None) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s%(asm_ctx)s: %(message)s")
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        parts = []
        labels = (("session_id", "session"), ("run_id", "run"), ("activity_type", "activity"))
        for key, label in labels:
            value = getattr(record, key, None)
            if value:
                parts.append(f"{label}={value}")
        attempt = getattr(record, "attempt", None)
        if attempt:
            parts.append(f"attempt={attempt}")
        record.asm_ctx = f" [{' '.join(parts)}]" if parts else ""
        line = super().format(record)
        return self.redactor.redact(line) if self.redactor else line


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
        from agent_session_manager.core.errors import error

        raise error(
            "validation_error",
            f"ASM_LOG_FORMAT={settings.log_format!r}: use json or text",
            details={"value": settings.log_format},
        )
    redactor = RedactingFilter(secret_values(environ, settings))
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
