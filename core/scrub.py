"""Redaction and byte caps: what a failure may say before it enters an error, event, span or log.

A provider's error can be a multi-megabyte HTML page that echoes the request's credentials.
Whatever it says travels on: into an :class:`~core.errors.AsmError`, from there into a Temporal
failure (history, and the gRPC message that carries it: over ~4 MB the server never hears of
the failure), an ``error_occurred`` row, a span and a log line. So text from outside passes
through :func:`scrub` first: credentials are replaced with :data:`REDACTED`, then the text is
cut to a byte budget on a UTF-8 character boundary. :func:`scrub_value` does the same to a
JSON-like value (an error body, error details) while keeping its shape.

Credentials are recognised by shape (``sk-ant-…`` and ``sk-…`` API keys, ``Bearer <token>``,
``x-api-key``/``api-key``/``authorization`` header values) and, exactly, by the configured
secret values the caller passes (the worker's provider credentials). Pure and deterministic:
workflows build errors too.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import date, datetime, time
from enum import Enum
from typing import Any

from pydantic import BaseModel

REDACTED = "[REDACTED]"
"""What a credential is replaced with."""

#: Shorter secret values are not redacted: replacing "1" or "abc" everywhere would garble the
#: text, and such values are not credentials anyway.
MIN_SECRET_CHARS = 6

#: Redaction reads this much past the byte cap, so a credential that starts before the cut is
#: seen whole (and redacted) even though the text is cut right after it.
_LOOKAHEAD_CHARS = 512

# Bearer first: ``Authorization: Bearer <token>`` must lose the token, not just the word
# "Bearer" (which the header rule alone would take for the value).
_BEARER = re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*")
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_\-]{8,}")
_HEADER = re.compile(
    r"(?i)\b((?:x-)?api[-_]?key|(?:proxy-)?authorization)"
    # The scheme word stays (possessive: it may not be given back to be taken for the value).
    r"([\"']?\s*[:=]\s*[\"']?(?:(?:bearer|basic)\s+)?+)"
    r"(?!\[REDACTED\])([^\s\"'<>,;&]+)"
)


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every credential (by shape, and each of ``secrets``) replaced."""
    for secret in sorted(_usable(secrets), key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, REDACTED)
    text = _BEARER.sub(rf"\g<1>{REDACTED}", text)
    text = _API_KEY.sub(REDACTED, text)
    return _HEADER.sub(rf"\g<1>\g<2>{REDACTED}", text)


def cap(text: str, max_bytes: int, *, of: int | None = None) -> str:
    """``text`` as valid UTF-8 of at most ``max_bytes`` bytes, marked when it was cut.

    The cut never splits a character; lone surrogates (which protobuf, and so Temporal,
    refuses) become ``?``. The marker says the size, ``of`` bytes when ``text`` is already
    the start of something bigger.
    """
    data = text.encode("utf-8", "replace")
    if len(data) <= max_bytes:
        return data.decode("utf-8")
    marker = f"…[{of or len(data)} bytes, truncated]"
    room = max_bytes - len(marker.encode())
    if room < 0:  # too small a budget for the marker: just cut
        return data[:max_bytes].decode("utf-8", "ignore")
    return data[:room].decode("utf-8", "ignore") + marker


def scrub(text: str, max_bytes: int, secrets: Iterable[str] = ()) -> str:
    """``text`` redacted, then capped to ``max_bytes`` (UTF-8): the one way text from outside
    enters an error, an event, a span or a log."""
    secrets = _usable(secrets)
    # Only the part that can survive the cap is redacted: a 5 MB page costs no more than 5 KB.
    window = max_bytes + _LOOKAHEAD_CHARS + max((len(s) for s in secrets), default=0)
    size = None
    if len(text) > window:
        size = len(text.encode("utf-8", "replace"))
        text = _without_partial_secret(text[:window], secrets)
    return cap(redact(text, secrets), max_bytes, of=size)


def scrub_value(value: Any, max_bytes: int, secrets: Iterable[str] = ()) -> Any:
    """``value`` (JSON-like) with every string redacted, shrunk until its JSON fits ``max_bytes``.

    The shape is kept as long as possible (strings, then lists and dicts, are cut shorter and
    shorter, so small fields such as a code or an attempt number survive); if even that does
    not fit, the result is a string: the start of the value's JSON, scrubbed.
    """
    secrets = _usable(secrets)
    out: Any = None
    for leaf_bytes, items in ((max_bytes, 200), (1024, 50), (256, 20), (64, 5)):
        out = _walk(value, min(leaf_bytes, max_bytes), items, secrets, depth=0)
        if json_size(out) <= max_bytes:
            return out
    text = json.dumps(out, ensure_ascii=False, separators=(",", ":"), default=repr)
    # The preview is a JSON string itself: quotes and escapes count against the budget too.
    budget = max_bytes - 2
    while True:
        preview = scrub(text, max(budget, 0), secrets)
        over = json_size(preview) - max_bytes
        if over <= 0 or budget <= 0:
            return preview
        budget -= over


def json_size(value: Any) -> int:
    """Bytes of ``value`` as compact UTF-8 JSON (what it weighs in an event or a payload)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=repr)
    return len(text.encode("utf-8", "replace"))


#: Nesting kept by :func:`scrub_value`; deeper values become a marker (a body nested a
#: thousand deep would otherwise exhaust the recursion limit).
_MAX_DEPTH = 16


def _walk(value: Any, leaf_bytes: int, items: int, secrets: list[str], depth: int) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else repr(value)
    if isinstance(value, str):
        return scrub(value, leaf_bytes, secrets)
    if depth >= _MAX_DEPTH:
        return "…[nested too deep]"
    if isinstance(value, dict):
        kept = list(value.items())[:items]
        out = {
            scrub(str(k), 256, secrets): _walk(v, leaf_bytes, items, secrets, depth + 1)
            for k, v in kept
        }
        if len(value) > items:
            out["…"] = f"{len(value) - items} more"
        return out
    if isinstance(value, list | tuple):
        walked = [_walk(v, leaf_bytes, items, secrets, depth + 1) for v in value[:items]]
        if len(value) > items:
            walked.append(f"…[{len(value) - items} more]")
        return walked
    # What the JSON payload converter would have made of it, so shrinking changes no type.
    if isinstance(value, Enum):
        return _walk(value.value, leaf_bytes, items, secrets, depth + 1)
    if isinstance(value, datetime | date | time):
        return scrub(value.isoformat(), leaf_bytes, secrets)
    if isinstance(value, BaseModel):
        dumped = value.model_dump(mode="json")
        return _walk(dumped, leaf_bytes, items, secrets, depth + 1)
    return scrub(repr(value), leaf_bytes, secrets)


def _usable(secrets: Iterable[str]) -> list[str]:
    return [s for s in secrets if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS]


def _without_partial_secret(text: str, secrets: list[str]) -> str:
    """``text`` without a trailing start of a secret (cut off by the window, so unrecognisable)."""
    cut = True
    while cut:  # trimming one secret's start may expose another's
        cut = False
        for secret in secrets:
            for n in range(min(len(secret) - 1, len(text)), 0, -1):
                if text.endswith(secret[:n]):
                    text, cut = text[:-n], True
                    break
    return text
