"""The audit log: who or what changed what, read from the event store (and Temporal history).

The event store is the permanent record: every status change is a lifecycle event with the
previous status (``data.from``), the reason, and — when a workflow update caused it — the
update's name (``data.update``). What the store cannot know is *which client* sent the
request: Temporal records that in the workflow history (the update's, signal's or cancel
request's ``identity``, by default ``pid@host`` of the calling process). When a Temporal
client is given, :func:`audit_log` reads the session's history (every run of its
continue-as-new chain) and attaches the identity to the entry it caused:

* ``session_created`` ← the workflow start;
* a transition with ``data.update`` ← the matching successful update of that name, in order;
* ``session_completed`` / ``session_failed`` ← the successful ``complete`` / ``fail`` update;
* ``session_cancelled`` ← the ``cancel`` signal, else Temporal's own cancel request;
* ``run_started`` ← the ``submit_run`` update whose result names the run;
* ``run_cancelled`` ← the ``cancel_run`` update or signal naming the run, else the session's
  cancellation.

A history that is gone (retention) simply leaves ``identity`` empty. Token deltas
(``message_streamed``) are not audit material and are left out unless asked for by type.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import IO, Any, Literal

from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.service import RPCError

from agent_session_manager.core.contract import session_workflow_id
from agent_session_manager.core.errors import error
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.core.protocol import CANCEL, CANCEL_RUN, COMPLETE, FAIL, SUBMIT_RUN
from agent_session_manager.store import EventStore

#: Left out unless ``types`` names them: one row per streamed token chunk is not an audit.
DEFAULT_EXCLUDED_TYPES = frozenset({EventType.MESSAGE_STREAMED.value})

#: Event type → (what changed status, the status it changed to).
STATUS_CHANGES: dict[str, tuple[Literal["session", "run"], str]] = {
    "session_created": ("session", "pending"),
    "session_started": ("session", "active"),
    "session_paused": ("session", "paused"),
    "session_resumed": ("session", "active"),
    "session_completed": ("session", "completed"),
    "session_failed": ("session", "failed"),
    "session_cancelled": ("session", "cancelled"),
    "run_started": ("run", "running"),
    "run_completed": ("run", "completed"),
    "run_failed": ("run", "failed"),
    "run_cancelled": ("run", "cancelled"),
    "run_timeout": ("run", "timeout"),
}

PAGE = 1000


@dataclass(frozen=True)
class AuditEntry:
    """One audited event: what happened, to what, caused by whom."""

    seq: int
    at: datetime
    session_id: str
    run_id: str | None
    type: str
    attempt: int = 0
    scope: Literal["session", "run"] | None = None
    status_from: str | None = None
    status_to: str | None = None
    actor: str = "workflow"
    """``update:<name>``, ``signal:<name>``, ``cancel_request``, ``start``, ``provider``
    (events of a provider attempt) or ``workflow`` (the workflow's own decision: a run
    ending, an idle timeout, activate-on-start)."""
    update: str | None = None
    identity: str | None = None
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, for JSON Lines export."""
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "session_id": self.session_id,
            "run_id": self.run_id,
            "type": self.type,
            "attempt": self.attempt,
            "scope": self.scope,
            "status_from": self.status_from,
            "status_to": self.status_to,
            "actor": self.actor,
            "update": self.update,
            "identity": self.identity,
            "reason": self.reason,
            "data": self.data,
        }


def to_jsonl(entries: Iterable[AuditEntry]) -> Iterator[str]:
    """One JSON object per entry (no trailing newline)."""
    for entry in entries:
        yield json.dumps(entry.to_dict(), default=str, ensure_ascii=False)


def write_jsonl(entries: Iterable[AuditEntry], fp: IO[str]) -> int:
    """Write ``entries`` as JSON Lines to ``fp``; returns how many."""
    n = 0
    for line in to_jsonl(entries):
        fp.write(line + "\n")
        n += 1
    return n


def _entry(event: Event) -> AuditEntry:
    data = dict(event.data)
    type_ = event.type.value
    scope, status_to = STATUS_CHANGES.get(type_, (None, None))
    update = data.get("update") if isinstance(data.get("update"), str) else None
    if update:
        actor = f"update:{update}"
    elif type_ == EventType.SESSION_CREATED.value:
        actor = "start"
    elif event.attempt > 0:
        actor = "provider"
    else:
        actor = "workflow"
    status_from = data.get("from") if isinstance(data.get("from"), str) else None
    reason = data.get("reason") if isinstance(data.get("reason"), str) else None
    return AuditEntry(
        seq=event.seq,
        at=event.created_at,
        session_id=event.session_id,
        run_id=event.run_id,
        type=type_,
        attempt=event.attempt,
        scope=scope,
        status_from=status_from,
        status_to=status_to,
        actor=actor,
        update=update,
        reason=reason,
        data=data,
    )


async def _events(
    store: EventStore, session_id: str, run_id: str | None, types: Sequence[str] | None
) -> list[Event]:
    out: list[Event] = []
    after = 0
    while True:
        batch = await store.events(
            session_id, after_seq=after, run_id=run_id, types=types, limit=PAGE, strict=False
        )
        if not batch:
            return out
        out.extend(batch)
        after = batch[-1].seq


async def audit_log(
    store: EventStore,
    session_id: str | None = None,
    run_id: str | None = None,
    since: datetime | None = None,
    types: Sequence[str] | None = None,
    *,
    temporal: Client | None = None,
) -> list[AuditEntry]:
    """The audit trail of a session (or of one run), oldest first.

    ``since``: only events created at or after it. ``types``: only these event types (by
    default every type but ``message_streamed``). ``temporal``: read the session's workflow
    history to fill in ``identity`` (and the actor of changes the store cannot attribute).
    """
    if session_id is None and run_id is None:
        raise error("validation_error", "audit_log needs a session_id or a run_id")
    if run_id is not None and session_id is None:
        row = await store.get_run(run_id)
        if row is None:
            raise error("run_not_found", f"no run {run_id!r} in the event store")
        session_id = row.session_id
    assert session_id is not None
    events = await _events(store, session_id, run_id, list(types) if types else None)
    if not types:
        events = [e for e in events if e.type.value not in DEFAULT_EXCLUDED_TYPES]
    entries = [_entry(e) for e in events]
    if temporal is not None:
        requests = await _requests(temporal, session_workflow_id(session_id))
        if requests is not None:
            entries = requests.attribute(entries)
    if since is not None:
        entries = [e for e in entries if e.at >= since]
    return entries


# --- who asked: the session's workflow history ------------------------------------------------


@dataclass
class _Update:
    name: str
    identity: str | None
    args: list[Any]
    result: Any = None
    succeeded: bool = False
    used: bool = False


@dataclass
class _Signal:
    name: str
    identity: str | None
    args: list[Any]
    used: bool = False


@dataclass
class _Requests:
    """Requests recorded in a session's history, in the order they completed."""

    started_by: str | None = None
    updates: list[_Update] = field(default_factory=list)
    signals: list[_Signal] = field(default_factory=list)
    cancel_requests: list[str | None] = field(default_factory=list)

    def _take_update(self, name: str, run_id: str | None = None) -> _Update | None:
        for u in self.updates:
            if u.used or not u.succeeded or u.name != name:
                continue
            if run_id is not None and _run_id_of(u) != run_id:
                continue
            u.used = True
            return u
        return None

    def _take_signal(self, name: str, run_id: str | None = None) -> _Signal | None:
        for s in self.signals:
            if s.used or s.name != name:
                continue
            if run_id is not None and _arg_field(s.args, "run_id") != run_id:
                continue
            s.used = True
            return s
        return None

    def attribute(self, entries: list[AuditEntry]) -> list[AuditEntry]:
        out: list[AuditEntry] = []
        for e in entries:
            actor, identity = e.actor, None
            if e.type == EventType.SESSION_CREATED.value:
                identity = self.started_by
            elif e.update:
                if (u := self._take_update(e.update)) is not None:
                    identity = u.identity
            elif e.type in (EventType.SESSION_COMPLETED.value, EventType.SESSION_FAILED.value):
                name = COMPLETE if e.type == EventType.SESSION_COMPLETED.value else FAIL
                if (u := self._take_update(name)) is not None:
                    actor, identity = f"update:{name}", u.identity
            elif e.type == EventType.SESSION_CANCELLED.value:
                if (s := self._take_signal(CANCEL)) is not None:
                    actor, identity = f"signal:{CANCEL}", s.identity
                elif self.cancel_requests:
                    actor, identity = "cancel_request", self.cancel_requests[0]
            elif e.type == EventType.RUN_STARTED.value:
                if (u := self._take_update(SUBMIT_RUN, run_id=e.run_id)) is not None:
                    actor, identity = f"update:{SUBMIT_RUN}", u.identity
            elif e.type == EventType.RUN_CANCELLED.value:
                if (u := self._take_update(CANCEL_RUN, run_id=e.run_id)) is not None:
                    actor, identity = f"update:{CANCEL_RUN}", u.identity
                elif (s := self._take_signal(CANCEL_RUN, run_id=e.run_id)) is not None:
                    actor, identity = f"signal:{CANCEL_RUN}", s.identity
                else:
                    pending = self._session_cancel()
                    if pending is not None:
                        actor, identity = pending
            out.append(replace(e, actor=actor, identity=identity))
        return out

    def _session_cancel(self) -> tuple[str, str | None] | None:
        # Runs cancelled because the session is being cancelled are recorded before the
        # session's own event: attribute them to the same request without consuming it.
        for s in self.signals:
            if s.name == CANCEL and not s.used:
                return f"signal:{CANCEL}", s.identity
        if self.cancel_requests:
            return "cancel_request", self.cancel_requests[0]
        return None


def _arg_field(args: list[Any], key: str) -> Any:
    first = args[0] if args else None
    return first.get(key) if isinstance(first, dict) else None


def _run_id_of(update: _Update) -> str | None:
    # submit_run returns a RunRef naming the run; cancel_run takes a CancelRun naming it.
    if isinstance(update.result, dict) and update.result.get("run_id"):
        return str(update.result["run_id"])
    value = _arg_field(update.args, "run_id")
    return str(value) if value is not None else None


def _decode(temporal: Client, payloads: Payloads) -> list[Any]:
    if not payloads.payloads:
        return []
    try:
        return list(temporal.data_converter.payload_converter.from_payloads(payloads.payloads))
    except Exception:  # a payload we cannot read still leaves the identity useful
        return []


async def _requests(temporal: Client, workflow_id: str) -> _Requests | None:
    """Every run of ``workflow_id``'s continue-as-new chain, oldest first; None if gone."""
    histories = []
    run_id: str | None = None
    try:
        while True:
            handle = temporal.get_workflow_handle(workflow_id, run_id=run_id)
            history = await handle.fetch_history()
            histories.append(history)
            first = history.events[0] if history.events else None
            previous = (
                first.workflow_execution_started_event_attributes.continued_execution_run_id
                if first is not None
                and first.HasField("workflow_execution_started_event_attributes")
                else ""
            )
            if not previous:
                break
            run_id = previous
    except RPCError:
        if not histories:
            return None
    requests = _Requests()
    for history in reversed(histories):
        pending: dict[str, _Update] = {}
        for ev in history.events:
            if ev.HasField("workflow_execution_started_event_attributes"):
                started = ev.workflow_execution_started_event_attributes
                if requests.started_by is None and not started.continued_execution_run_id:
                    requests.started_by = started.identity or None
            elif ev.HasField("workflow_execution_update_accepted_event_attributes"):
                req = ev.workflow_execution_update_accepted_event_attributes.accepted_request
                pending[req.meta.update_id] = _Update(
                    name=req.input.name,
                    identity=req.meta.identity or None,
                    args=_decode(temporal, req.input.args),
                )
            elif ev.HasField("workflow_execution_update_completed_event_attributes"):
                completed = ev.workflow_execution_update_completed_event_attributes
                update = pending.pop(completed.meta.update_id, None)
                if update is None:
                    continue
                if completed.outcome.HasField("success"):
                    update.succeeded = True
                    results = _decode(temporal, completed.outcome.success)
                    update.result = results[0] if results else None
                requests.updates.append(update)
            elif ev.HasField("workflow_execution_signaled_event_attributes"):
                signaled = ev.workflow_execution_signaled_event_attributes
                requests.signals.append(
                    _Signal(
                        name=signaled.signal_name,
                        identity=signaled.identity or None,
                        args=_decode(temporal, signaled.input),
                    )
                )
            elif ev.HasField("workflow_execution_cancel_requested_event_attributes"):
                cancel = ev.workflow_execution_cancel_requested_event_attributes
                requests.cancel_requests.append(cancel.identity or None)
    return requests


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``2025-01-31T12:00:00Z`` (ISO 8601, UTC if no offset) or a relative ``30s``/``15m``/
    ``2h``/``7d`` before ``now``."""
    from datetime import UTC, timedelta

    value = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    try:
        if value[:-1].isdigit() and value[-1:] in units:
            ago = timedelta(seconds=int(value[:-1]) * units[value[-1]])
            return (now or datetime.now(UTC)) - ago
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (ValueError, OverflowError):  # OverflowError: a span before year 1
        raise error(
            "validation_error",
            f"--since {text!r}: use an ISO time (2025-01-31T12:00:00Z) or 30s, 15m, 2h, 7d",
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def format_entry(entry: AuditEntry) -> str:
    """One human-readable line: time, seq, event, status change, who, reason."""
    change = ""
    if entry.status_to:
        change = f" {entry.scope} {entry.status_from or '·'} → {entry.status_to}"
    run = f" {entry.run_id}" if entry.run_id else ""
    who = entry.actor + (f" ({entry.identity})" if entry.identity else "")
    reason = f" — {entry.reason}" if entry.reason else ""
    return f"{entry.at:%Y-%m-%d %H:%M:%S} {entry.seq:>5} {entry.type}{run}{change} by {who}{reason}"
