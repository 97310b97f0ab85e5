"""Log lines as people read them (text) or as collectors read them (one JSON object a line)."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from agent_session_manager.observability.log_context import CONTEXT_FIELDS
from agent_session_manager.observability.redaction import RedactingFilter


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
