"""Turning raw provider events into canonical event drafts.

Providers and their SDKs name the same thing many ways (``delta``, ``content_block_delta``,
``text_delta``…). :class:`EventNormalizer` maps a raw name, case-insensitively and with
``.``/``-``/space read as ``_``, onto one of the 25 canonical :class:`~core.events.EventType`
values; canonical names map to themselves. A generic run end (``run_end``, ``done``,
``completed``…) is refined by the event's ``status``: ``failed`` becomes ``run_failed``,
``cancelled`` ``run_cancelled``, ``timeout`` ``run_timeout``. An explicit ending
(``run_failed``, ``cancelled``…) is not re-refined: the name is the more specific claim.

Stricter than the seed: an unknown or missing name is ``invalid_event_type`` (never a
silent fallback type), a run end whose status is unknown or not terminal is
``invalid_status``, and a raw event naming another session or run than the one being
normalized for is ``session_mismatch`` / ``run_mismatch``.

Ordering of stored events (``seq``, then time, then id) lives with the envelope:
:func:`agent_session_manager.core.events.sort_events`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from agent_session_manager.core.errors import StateError
from agent_session_manager.core.events import EventDraft, EventType, parse_event_type
from agent_session_manager.core.status import RunStatus, parse_run_status

_T = EventType

#: raw name (normalized: lower case, ``_`` separators) -> canonical type, beyond the
#: canonical names themselves.
DEFAULT_ALIASES: Mapping[str, EventType] = MappingProxyType(
    {
        # session
        "session_start": _T.SESSION_STARTED,
        "session_pause": _T.SESSION_PAUSED,
        "session_resume": _T.SESSION_RESUMED,
        "session_end": _T.SESSION_COMPLETED,
        "session_complete": _T.SESSION_COMPLETED,
        "session_error": _T.SESSION_FAILED,
        "session_cancel": _T.SESSION_CANCELLED,
        # run start
        "run_start": _T.RUN_STARTED,
        "start": _T.RUN_STARTED,
        "started": _T.RUN_STARTED,
        "turn_started": _T.RUN_STARTED,
        # run end: refined by status
        "run_end": _T.RUN_COMPLETED,
        "run_complete": _T.RUN_COMPLETED,
        "end": _T.RUN_COMPLETED,
        "done": _T.RUN_COMPLETED,
        "complete": _T.RUN_COMPLETED,
        "completed": _T.RUN_COMPLETED,
        "finish": _T.RUN_COMPLETED,
        "finished": _T.RUN_COMPLETED,
        "result": _T.RUN_COMPLETED,
        "message_stop": _T.RUN_COMPLETED,
        "response_completed": _T.RUN_COMPLETED,
        # explicit run endings
        "run_error": _T.RUN_FAILED,
        "failed": _T.RUN_FAILED,
        "turn_failed": _T.RUN_FAILED,
        "cancelled": _T.RUN_CANCELLED,
        "canceled": _T.RUN_CANCELLED,
        "aborted": _T.RUN_CANCELLED,
        "timeout": _T.RUN_TIMEOUT,
        "timed_out": _T.RUN_TIMEOUT,
        # messages
        "delta": _T.MESSAGE_STREAMED,
        "content_block_delta": _T.MESSAGE_STREAMED,
        "text_delta": _T.MESSAGE_STREAMED,
        "thinking_delta": _T.MESSAGE_STREAMED,
        "chunk": _T.MESSAGE_STREAMED,
        "token": _T.MESSAGE_STREAMED,
        "stream": _T.MESSAGE_STREAMED,
        "response_output_text_delta": _T.MESSAGE_STREAMED,
        "message": _T.MESSAGE_RECEIVED,
        "assistant_message": _T.MESSAGE_RECEIVED,
        "agent_message": _T.MESSAGE_RECEIVED,
        "response": _T.MESSAGE_RECEIVED,
        "user_message": _T.MESSAGE_SENT,
        "prompt": _T.MESSAGE_SENT,
        # tools
        "tool_use": _T.TOOL_CALL_STARTED,
        "tool_call": _T.TOOL_CALL_STARTED,
        "tool_start": _T.TOOL_CALL_STARTED,
        "tool_call_start": _T.TOOL_CALL_STARTED,
        "function_call": _T.TOOL_CALL_STARTED,
        "tool_result": _T.TOOL_CALL_COMPLETED,
        "tool_end": _T.TOOL_CALL_COMPLETED,
        "tool_call_end": _T.TOOL_CALL_COMPLETED,
        "function_call_output": _T.TOOL_CALL_COMPLETED,
        "function_result": _T.TOOL_CALL_COMPLETED,
        "tool_error": _T.TOOL_CALL_FAILED,
        "tool_failed": _T.TOOL_CALL_FAILED,
        "function_call_error": _T.TOOL_CALL_FAILED,
        # errors
        "error": _T.ERROR_OCCURRED,
        "exception": _T.ERROR_OCCURRED,
        "recovered": _T.ERROR_RECOVERED,
        "retry": _T.ERROR_RECOVERED,
        # usage and turns
        "usage": _T.TOKEN_USAGE_UPDATED,
        "token_usage": _T.TOKEN_USAGE_UPDATED,
        "usage_update": _T.TOKEN_USAGE_UPDATED,
        "turn_end": _T.TURN_COMPLETED,
        "turn_complete": _T.TURN_COMPLETED,
        # approvals
        "approval_request": _T.TOOL_APPROVAL_REQUESTED,
        "approval_requested": _T.TOOL_APPROVAL_REQUESTED,
        "permission_request": _T.TOOL_APPROVAL_REQUESTED,
        "approval_granted": _T.TOOL_APPROVAL_GRANTED,
        "approved": _T.TOOL_APPROVAL_GRANTED,
        "permission_granted": _T.TOOL_APPROVAL_GRANTED,
        "approval_denied": _T.TOOL_APPROVAL_DENIED,
        "denied": _T.TOOL_APPROVAL_DENIED,
        "rejected": _T.TOOL_APPROVAL_DENIED,
        "permission_denied": _T.TOOL_APPROVAL_DENIED,
    }
)

#: status word (normalized) -> the run status it means, beyond the status values themselves.
STATUS_ALIASES: Mapping[str, RunStatus] = MappingProxyType(
    {
        "complete": RunStatus.COMPLETED,
        "success": RunStatus.COMPLETED,
        "succeeded": RunStatus.COMPLETED,
        "ok": RunStatus.COMPLETED,
        "error": RunStatus.FAILED,
        "errored": RunStatus.FAILED,
        "failure": RunStatus.FAILED,
        "canceled": RunStatus.CANCELLED,
        "aborted": RunStatus.CANCELLED,
        "timed_out": RunStatus.TIMEOUT,
    }
)

#: Raw keys that are envelope, not payload: never copied into ``data``.
ENVELOPE_KEYS: frozenset[str] = frozenset(
    {"type", "event", "id", "session_id", "run_id", "seq", "attempt", "provider", "created_at"}
)

_CANONICAL = frozenset(t.value for t in EventType)

_REFINED: dict[RunStatus, EventType] = {
    RunStatus.COMPLETED: _T.RUN_COMPLETED,
    RunStatus.FAILED: _T.RUN_FAILED,
    RunStatus.CANCELLED: _T.RUN_CANCELLED,
    RunStatus.TIMEOUT: _T.RUN_TIMEOUT,
}


def normalize_name(name: str) -> str:
    """``name`` as an alias key: trimmed, lower case, ``.``, ``-``, ``/`` and spaces as ``_``."""
    key = name.strip().lower()
    for sep in (".", "-", "/", " "):
        key = key.replace(sep, "_")
    return key


class EventNormalizer:
    """Maps raw provider event names and aliases onto canonical event types and drafts."""

    __slots__ = ("_aliases",)

    def __init__(self, aliases: Mapping[str, EventType | str] | None = None) -> None:
        table: dict[str, EventType] = {t.value: t for t in EventType}
        table.update(DEFAULT_ALIASES)
        for name, target in (aliases or {}).items():
            key = normalize_name(name)
            resolved = target if isinstance(target, EventType) else parse_event_type(target)
            if key in _CANONICAL and resolved.value != key:
                # A canonical name meaning something else would make stored events lie.
                raise ValueError(f"cannot alias canonical event type {key!r} to {resolved}")
            table[key] = resolved
        self._aliases: Mapping[str, EventType] = MappingProxyType(table)

    @property
    def aliases(self) -> Mapping[str, EventType]:
        """Every name this normalizer knows (canonical ones included), read-only."""
        return self._aliases

    def resolve(self, name: str, *, status: str | None = None) -> EventType:
        """The canonical type for raw ``name``, refined by ``status`` for a generic run end."""
        resolved = self._aliases.get(normalize_name(name))
        if resolved is None:
            raise StateError(
                "invalid_event_type",
                f"unknown event type {name!r}",
                details={"type": name},
            )
        if resolved is _T.RUN_COMPLETED and status is not None:
            return _REFINED[_terminal_status(status)]
        return resolved

    def normalize(
        self,
        raw: Mapping[str, Any],
        *,
        event_id: str,
        session_id: str,
        run_id: str | None = None,
        attempt: int = 0,
        provider: str | None = None,
    ) -> EventDraft:
        """A validated draft from ``raw`` (``type`` or ``event`` names it; the rest is data).

        ``raw["data"]``, when a dict, is the payload, with the other non-envelope keys added
        to it; the original name is kept in ``data["raw_type"]`` when it was an alias.
        """
        name = raw.get("type", raw.get("event"))
        if not isinstance(name, str) or not name.strip():
            raise StateError(
                "invalid_event_type",
                "raw event has no type",
                details={"keys": sorted(str(k) for k in raw)},
            )
        status = raw.get("status")
        event_type = self.resolve(name, status=status if isinstance(status, str) else None)
        raw_session = raw.get("session_id")
        if raw_session is not None and raw_session != session_id:
            raise StateError(
                "session_mismatch",
                f"raw event names session {raw_session!r}, not {session_id!r}",
                details={"expected": session_id, "actual": raw_session},
            )
        raw_run = raw.get("run_id")
        if run_id is not None and raw_run is not None and raw_run != run_id:
            raise StateError(
                "run_mismatch",
                f"raw event names run {raw_run!r}, not {run_id!r}",
                details={"expected": run_id, "actual": raw_run},
            )
        payload = raw.get("data")
        data: dict[str, Any] = dict(payload) if isinstance(payload, Mapping) else {}
        for key, value in raw.items():
            if key not in ENVELOPE_KEYS and not (key == "data" and isinstance(payload, Mapping)):
                data.setdefault(key, value)
        if normalize_name(name) != event_type.value:
            data["raw_type"] = name
        if self._aliases[normalize_name(name)] is _T.RUN_COMPLETED and isinstance(status, str):
            # The status decided the type: store its canonical spelling with it.
            data["status"] = _terminal_status(status).value
        return EventDraft(
            id=event_id,
            session_id=session_id,
            run_id=run_id if run_id is not None else raw_run,
            attempt=attempt,
            type=event_type,
            data=data,
            provider=provider,
        )


def _terminal_status(status: str) -> RunStatus:
    key = normalize_name(status)
    parsed = STATUS_ALIASES.get(key) or parse_run_status(key)
    if not parsed.is_terminal:
        raise StateError(
            "invalid_status",
            f"a run end needs a terminal status, got {status!r}",
            details={"status": status},
        )
    return parsed
