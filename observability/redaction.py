"""Secrets never reach log output: their values are replaced with ``[REDACTED]``.

:class:`RedactingFilter` replaces the values of provider secret variables (and the event
store's database password) in a record's message, its arguments and the formatted exception,
so a secret that reaches a log call anyway never reaches the output; so are credentials
recognised by their shape (API keys, bearer tokens: :func:`core.scrub.redact`, the same rules
errors and events follow).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from agent_session_manager.core.scrub import MIN_SECRET_CHARS, REDACTED, redact

__all__ = ["REDACTED", "RedactingFilter", "secret_values"]
_SECRET_MARKERS = ("KEY", "TOKEN", "SECRET", "PASSWORD")


def secret_values(
    names: Iterable[str], environ: Mapping[str, str], database_url: str | None = None
) -> list[str]:
    """The values to keep out of logs: the secret variables among ``names``, the DB password.

    Only variables whose name marks a secret (``*KEY*``, ``*TOKEN*``, …) count: a base URL is
    configuration, and redacting it would hide where a worker sends its calls.
    """
    values = [
        environ[name]
        for name in names
        if any(m in name for m in _SECRET_MARKERS) and environ.get(name)
    ]
    if database_url:
        try:
            from sqlalchemy.engine import make_url

            password = make_url(database_url).password
        except Exception:
            password = None
        if password:
            values.append(str(password))
    return sorted({v for v in values if len(v) >= MIN_SECRET_CHARS}, key=len, reverse=True)


class RedactingFilter(logging.Filter):
    """Replace secret values in a record's message, arguments and exception text."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        """``text`` with the secrets, and anything shaped like a credential, replaced."""
        return redact(text, self.secrets)

    def filter(self, record: logging.LogRecord) -> bool:
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
