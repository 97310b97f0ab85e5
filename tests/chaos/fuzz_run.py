"""The fuzz driver: sends generated requests (tests/chaos/fuzz_inputs.py) through a raw Temporal
client, classifies each outcome, and checks the invariants a careless caller must not break.

A raw client here is ``temporalio.client.Client`` with a payload converter that passes
hand-built ``Payload`` objects through untouched: what reaches the worker is exactly what the
generator built (no payload, two, ``binary/null``, invalid JSON, ...), as from the ``temporal``
CLI or any other SDK.

Requests aimed at a session lease a *target* (a session in a known state: pending, active,
busy with a running and a queued run, paused, closed) for their duration, so what the store
gained in between is this request's doing. After each request the target is probed (the
``describe`` query as a barrier, then the server's description of the workflow); a target
that is wedged, or no longer in its state, is retired and replaced.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import sqlite3
import time
import traceback
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, get_args

from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType as HistoryEventType
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.converter import DataConverter, DefaultPayloadConverter, PayloadConverter
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from agent_session_manager.client.session_client import SessionClient
from agent_session_manager.core import protocol
from agent_session_manager.core.contract import (
    MockScript,
    MockText,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.errors import ErrorCode
from agent_session_manager.core.events import Event, EventType
from agent_session_manager.store import EventStore
from tests.chaos.fuzz_inputs import (
    FINISHED_RUN,
    OTHER_SESSIONS_RUN,
    QUEUED_RUN,
    RUNNING_RUN,
    SESSION_ID,
    Request,
    TargetKind,
    materialize,
    plain_id,
)

CODES = frozenset(get_args(ErrorCode))
PYTHON_ERROR = re.compile(r"\b[A-Z]\w*(Error|Exception)\b")
#: How long one request may take before it counts as hung (a healthy one takes milliseconds).
REQUEST_TIMEOUT = 10.0
#: Quiet time after which a target's stream counts as settled.
SETTLE = 0.3
#: A busy target's run: long enough to outlive the fuzz, slow enough to write little.
SLOW = MockScript(steps=[MockText(text="." * 3000, chunk_size=5, delay_ms=250)])
QUICK = MockScript(steps=[MockText(text="warm")])


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


class _Passthrough(PayloadConverter):
    """Sends ``Payload`` values as they are; decodes results as plain JSON."""

    def __init__(self) -> None:
        self._default = DefaultPayloadConverter()

    def to_payloads(self, values: Sequence[Any]) -> list[Payload]:
        return [v if isinstance(v, Payload) else self._default.to_payloads([v])[0] for v in values]

    def from_payloads(
        self, payloads: Sequence[Payload], type_hints: list[type] | None = None
    ) -> list[Any]:
        return self._default.from_payloads(payloads, None)


RAW_CONVERTER = dataclasses.replace(DataConverter.default, payload_converter_class=_Passthrough)


def raw_client(temporal: Client) -> Client:
    """A client on the same connection that sends hand-built payloads untouched."""
    return Client(
        temporal.service_client, namespace=temporal.namespace, data_converter=RAW_CONVERTER
    )


@dataclass
class Target:
    """A session in a known state, leased by one request at a time."""

    kind: TargetKind
    session_id: str
    running_run: str = "none"
    queued_run: str = "none"
    finished_run: str = "none"
    other_run: str = "none"

    def ids(self) -> dict[str, str]:
        return {
            SESSION_ID: self.session_id,
            RUNNING_RUN: self.running_run,
            QUEUED_RUN: self.queued_run,
            FINISHED_RUN: self.finished_run,
            OTHER_SESSIONS_RUN: self.other_run,
        }


@dataclass
class Report:
    """What the fuzz saw: outcome counts and the violations, each with its request."""

    seed: int
    requests: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def violate(self, req: Request | None, what: str) -> None:
        where = f"#{req.index} {req.kind} {req.label[:160]}" if req else "global"
        self.violations.append(f"{what} <- {where}")

    def text(self) -> str:
        lines = [
            f"fuzz seed={self.seed}: {self.requests} requests in {self.seconds:.0f}s "
            f"(reproduce: FUZZ_SEED={self.seed})",
            *(f"  {n:5d}  {k}" for k, n in sorted(self.outcomes.items(), key=lambda kv: -kv[1])),
        ]
        if self.violations:
            lines.append(f"{len(self.violations)} violations:")
            lines.extend(f"  - {v}" for v in self.violations)
        return "\n".join(lines)


class Fuzz:
    """Runs requests against a worker on ``task_queue`` and records what happened."""

    def __init__(
        self,
        temporal: Client,
        store: EventStore,
        task_queue: str,
        seed: int,
        *,
        lanes: int = 24,
    ) -> None:
        self.temporal = temporal
        self.raw = raw_client(temporal)
        self.store = store
        self.client = SessionClient(temporal, store, task_queue=task_queue)
        self.task_queue = task_queue
        self.report = Report(seed=seed)
        self.lanes = asyncio.Semaphore(lanes)
        self.pool: dict[TargetKind, list[Target]] = {}
        self.finished_runs: list[tuple[str, str]] = []  # (session, run) of other sessions
        self.touched: dict[str, list[int]] = {}

    # --- targets ------------------------------------------------------------------------

    async def _make(self, kind: TargetKind) -> Target:
        c = self.client
        agent = "fuzz-target"
        if kind == "pending":
            view = await c.start_session(agent_id=agent, activate=False)
            return Target(kind, view.session_id)
        view = await c.start_session(agent_id=agent, mock=SLOW, multitask_strategy="enqueue")
        sid = view.session_id
        done = await c.run(sid, "warm up", mock=QUICK)
        await self._accounted(sid, done.run_id)
        t = Target(kind, sid, finished_run=done.run_id)
        others = [r for s, r in self.finished_runs if s != sid]
        t.other_run = others[-1] if others else "none"
        self.finished_runs.append((sid, done.run_id))
        if kind == "busy":
            t.running_run = (await c.submit_run(sid, "busy")).run_id
            t.queued_run = (await c.submit_run(sid, "queued")).run_id
        elif kind == "paused":
            await c.pause(sid)
        elif kind == "closed":
            await c.complete_session(sid)
        return t

    async def _accounted(self, session_id: str, run_id: str) -> None:
        """Wait for the run's ``turn_completed``: it lands after the run's result is visible."""
        for _ in range(200):
            events = await self.store.events(session_id, run_id=run_id, limit=10_000)
            if any(e.type is EventType.TURN_COMPLETED for e in events):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"run {run_id} of {session_id} was never accounted")

    async def _lease(self, kind: TargetKind) -> Target:
        free = self.pool.setdefault(kind, [])
        if free:
            return free.pop()
        return await self._make(kind)

    def _release(self, target: Target) -> None:
        self.pool.setdefault(target.kind, []).append(target)

    async def _in_state(self, target: Target, view: dict[str, Any]) -> bool:
        status = view.get("status")
        runs = {r["run_id"]: r["status"] for r in view.get("runs", [])}
        expected: dict[TargetKind, str] = {
            "pending": "pending",
            "active": "active",
            "busy": "active",
            "paused": "paused",
        }
        if target.kind == "closed" or status != expected[target.kind]:
            return False
        if target.kind == "busy":
            return runs.get(target.running_run) == "running" and target.queued_run in view.get(
                "queued", []
            )
        return not any(s in ("running", "pending") for s in runs.values())

    # --- one request --------------------------------------------------------------------

    async def send(self, req: Request) -> None:
        async with self.lanes:
            self.report.requests += 1
            try:
                await self._send(req)
            except Exception as exc:  # the driver's own bug must not pass for an outcome
                self.report.outcomes["DRIVER ERROR"] += 1
                self.report.violate(req, f"driver error {exc!r}: {traceback.format_exc()[-400:]}")

    async def _send(self, req: Request) -> None:
        target = await self._lease(req.target) if req.target is not None else None
        ids = target.ids() if target else {}
        payloads = materialize(req.payloads, ids)
        before = await self.store.last_seq(target.session_id) if target else 0
        if target:
            self.touched.setdefault(session_workflow_id(target.session_id), []).append(req.index)
        if req.kind in ("start_session", "start_run"):
            outcome = await self._start(req, payloads, target)
        elif req.kind == "update":
            assert target is not None
            outcome = await self._update(req, payloads, target)
        elif req.kind == "signal":
            assert target is not None
            outcome = await self._signal(req, payloads, target)
        else:
            assert target is not None
            outcome = await self._query(req, payloads, target)
        if target is None:
            self.report.outcomes[outcome] += 1
            return
        healthy = await self._after(req, target, outcome, before)
        if healthy:
            self._release(target)

    async def _after(self, req: Request, target: Target, outcome: str, before: int) -> bool:
        """Probe the target; judge what the request wrote. True if the target can be reused."""
        handle = self.raw.get_workflow_handle(session_workflow_id(target.session_id))
        view: dict[str, Any] | None = None
        try:
            view = await handle.query(
                protocol.DESCRIBE, rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT)
            )
        except (RPCError, WorkflowQueryFailedError):
            pass
        await self._quiesce(handle)
        health = await self._health(handle)
        if health is not None:
            self.report.outcomes[f"{outcome} -> {health}"] += 1
            if health != "closed" or target.kind != "closed":
                if health != "closed":
                    self.report.violate(req, f"{health}: {outcome}")
            return health == "closed" and target.kind == "closed"
        written = await self._written(target, before)
        types = sorted({e.type.value for e in written})
        if req.kind == "signal" and outcome == "signal sent":
            if not written:
                outcome = "signal: no effect"
            elif types == [EventType.ERROR_OCCURRED.value]:
                codes = sorted({str(e.data.get("code")) for e in written})
                outcome = f"signal dropped as error_occurred ({', '.join(codes)})"
            else:
                outcome = f"signal applied ({', '.join(types)})"
        elif written and req.kind in ("start_session", "start_run"):
            # The start named this existing session: whatever became of it, it owns nothing here.
            self.report.violate(req, f"wrote {types} into an existing session ({outcome})")
        elif written and not outcome.startswith("update accepted"):
            said = [str(e.data.get("message", ""))[:80] for e in written]
            self.report.violate(req, f"wrote {types} {said} for a rejected request ({outcome})")
        self.report.outcomes[outcome] += 1
        if req.over_limit and outcome.startswith(("update accepted", "signal applied")):
            self.report.violate(req, f"accepted over a limit ({req.over_limit}): {outcome}")
        if (
            view is not None
            and target.kind == "busy"
            and req.name == protocol.RUN_FINISHED
            and self._run_status(view, target.running_run) != "running"
            and await self._still_running(run_workflow_id(target.running_run))
        ):
            self.report.violate(req, "a forged run_finished settled a run that is still running")
        return view is not None and await self._in_state(target, view)

    async def _written(self, target: Target, before: int) -> list[Event]:
        """What the target's stream gained since ``before``, once it stopped growing.

        The probe's query answers before a signal's ``error_occurred`` write may have landed;
        waiting for quiet keeps a late write from being blamed on the next request.
        """
        seen = -1
        while True:
            events = await self.store.events(target.session_id, after_seq=before, limit=10_000)
            mine = [e for e in events if e.run_id not in (target.running_run, target.queued_run)]
            if len(mine) == seen:
                return mine
            seen = len(mine)
            await asyncio.sleep(SETTLE)

    @staticmethod
    def _run_status(view: dict[str, Any], run_id: str) -> str | None:
        return next((r["status"] for r in view.get("runs", []) if r["run_id"] == run_id), None)

    async def _still_running(self, workflow_id: str) -> bool:
        desc = await self.raw.get_workflow_handle(workflow_id).describe()
        return desc.status is WorkflowExecutionStatus.RUNNING

    async def _quiesce(self, handle: WorkflowHandle[Any, Any]) -> None:
        """Wait until no workflow task is pending: the local activities a signal started (its
        ``error_occurred`` record) have then finished, and so have their writes."""
        for _ in range(int(REQUEST_TIMEOUT / 0.05)):
            desc = await handle.describe()
            pending = desc.raw_description.pending_workflow_task
            if not desc.raw_description.HasField("pending_workflow_task") or pending.attempt >= 2:
                return
            await asyncio.sleep(0.05)

    async def _health(self, handle: WorkflowHandle[Any, Any]) -> str | None:
        """None if the workflow serves; else 'wedged', 'terminated' or 'closed'."""
        desc = await handle.describe()
        if desc.status is WorkflowExecutionStatus.TERMINATED:
            return "terminated"
        if desc.status is not WorkflowExecutionStatus.RUNNING:
            return "closed"
        if desc.raw_description.pending_workflow_task.attempt >= 2:
            return "wedged"
        return None

    # --- the operations -----------------------------------------------------------------

    async def _start(self, req: Request, payloads: list[Payload], target: Target | None) -> str:
        session = req.kind == "start_session"
        prefix = "session" if session else "run"
        wid = (
            plain_id(req.workflow_id)
            if req.workflow_id is not None
            else f"{prefix}-fuzz{self.report.seed}-{req.index}-{uuid.uuid4().hex[:6]}"
        )
        self.touched.setdefault(wid, []).append(req.index)
        try:
            handle = await self.raw.start_workflow(
                req.name,
                args=payloads,
                id=wid,
                task_queue=self.task_queue,
                rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT),
            )
        except WorkflowAlreadyStartedError:
            return f"{prefix} start: already started"
        except RPCError as exc:
            return f"{prefix} start: server rejected ({exc.status.name})"
        outcome = await self._start_outcome(req, handle, session)
        if "failed: validation_error" in outcome:
            await self._nothing_written_for(req, wid, payloads, target)
        elif req.over_limit and "accepted" in outcome:
            self.report.violate(req, f"accepted over a limit ({req.over_limit}): {outcome}")
        return outcome

    async def _start_outcome(
        self, req: Request, handle: WorkflowHandle[Any, Any], session: bool
    ) -> str:
        prefix = "session" if session else "run"
        deadline = time.monotonic() + REQUEST_TIMEOUT
        while time.monotonic() < deadline:
            desc = await handle.describe()
            status = desc.status
            if status is WorkflowExecutionStatus.FAILED:
                try:
                    await handle.result()
                except WorkflowFailureError as exc:
                    return self._typed(req, f"{prefix} start failed", exc.cause)
                return f"{prefix} start failed (no error?)"
            if status is WorkflowExecutionStatus.TERMINATED:
                self.report.violate(req, f"{prefix} terminated by the server")
                return f"{prefix} start -> terminated"
            if status is WorkflowExecutionStatus.COMPLETED:
                return f"{prefix} start accepted (completed)"
            if status is not WorkflowExecutionStatus.RUNNING:
                return f"{prefix} start -> {status.name if status else '?'}"
            if desc.raw_description.pending_workflow_task.attempt >= 2:
                self.report.violate(req, f"{prefix} start wedged")
                return f"{prefix} start -> wedged"
            if session:
                try:
                    view = await handle.query(protocol.DESCRIBE, rpc_timeout=timedelta(seconds=5))
                    if isinstance(view, dict) and view.get("ready"):
                        return "session start accepted (serving)"
                except (RPCError, WorkflowQueryFailedError):
                    pass
            await asyncio.sleep(0.1)
        return f"{prefix} start accepted (still running)"

    async def _nothing_written_for(
        self, req: Request, wid: str, payloads: list[Payload], target: Target | None
    ) -> None:
        """A start that failed wrote nothing: no session, run or events under its ids."""
        value: Any = None
        if len(payloads) == 1 and payloads[0].metadata.get("encoding") == b"json/plain":
            try:
                value = json.loads(payloads[0].data)
            except ValueError:
                value = None
        sessions = {wid.removeprefix("session-")} if req.kind == "start_session" else set()
        runs: set[str] = set()
        if isinstance(value, dict):
            if isinstance(value.get("session_id"), str) and req.kind == "start_session":
                sessions.add(value["session_id"])
            if isinstance(value.get("run_id"), str) and req.kind == "start_run":
                runs.add(value["run_id"])
        if target is not None:
            sessions.discard(target.session_id)  # judged by the target's own delta
        # An id SQLite cannot even encode (a lone surrogate) cannot have been stored.
        sessions = {i for i in sessions if _encodable(i)}
        runs = {i for i in runs if _encodable(i)}
        for sid in sessions:
            if await self.store.last_seq(sid) or await self.store.get_session(sid):
                self.report.violate(req, f"a failed start wrote session {sid[:40]!r}")
        for rid in runs:
            if await self.store.get_run(rid):
                self.report.violate(req, f"a failed start wrote run {rid[:40]!r}")

    async def _update(self, req: Request, payloads: list[Payload], target: Target) -> str:
        handle = self.raw.get_workflow_handle(session_workflow_id(target.session_id))
        try:
            await handle.execute_update(
                req.name, args=payloads, rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT)
            )
        except WorkflowUpdateFailedError as exc:
            return self._typed(req, f"{req.name} rejected", exc.cause)
        except WorkflowUpdateRPCTimeoutOrCancelledError:
            return f"{req.name} hung"
        except RPCError as exc:
            return self._rpc(req, req.name, exc)
        return f"update accepted ({req.name})"

    async def _signal(self, req: Request, payloads: list[Payload], target: Target) -> str:
        handle = self.raw.get_workflow_handle(session_workflow_id(target.session_id))
        try:
            await handle.signal(
                req.name, args=payloads, rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT)
            )
        except RPCError as exc:
            return self._rpc(req, f"signal {req.name}", exc)
        return "signal sent"

    async def _query(self, req: Request, payloads: list[Payload], target: Target) -> str:
        wid = (
            session_workflow_id(target.session_id)
            if req.run is None
            else run_workflow_id(target.ids()[req.run])
        )
        handle = self.raw.get_workflow_handle(wid)
        try:
            await handle.query(
                req.name, args=payloads, rpc_timeout=timedelta(seconds=REQUEST_TIMEOUT)
            )
        except WorkflowQueryFailedError as exc:
            # A query failure carries only a message: a Python exception's name in it means
            # the handler or its decoding broke, not that it refused the input.
            if PYTHON_ERROR.search(exc.message) and not any(c in exc.message for c in CODES):
                self.report.violate(req, f"query failed untyped: {exc.message[:200]}")
            return f"query {req.name} failed: {exc.message[:50]}"
        except RPCError as exc:
            return self._rpc(req, f"query {req.name}", exc)
        return f"query {req.name} answered"

    # --- classification -----------------------------------------------------------------

    def _typed(self, req: Request, what: str, cause: BaseException | None) -> str:
        if isinstance(cause, ApplicationError) and cause.type in CODES:
            return f"{what}: {cause.type}"
        kind = cause.type if isinstance(cause, ApplicationError) else type(cause).__name__
        self.report.violate(req, f"untyped error {kind}: {str(cause)[:200]}")
        return f"{what}: UNTYPED {kind}"

    def _rpc(self, req: Request, what: str, exc: RPCError) -> str:
        if exc.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
            return f"{what} hung"
        if exc.status is RPCStatusCode.NOT_FOUND:
            return f"{what}: workflow closed"
        return f"{what}: server rejected ({exc.status.name})"

    # --- the invariants after the fuzz ----------------------------------------------------

    async def check_workflows(self) -> int:
        """No workflow on the queue wedged or terminated; returns how many were checked."""
        listed = [wf async for wf in self.temporal.list_workflows(f'TaskQueue="{self.task_queue}"')]
        gate = asyncio.Semaphore(16)

        async def one(wf_id: str, run_id: str, status: WorkflowExecutionStatus | None) -> None:
            async with gate:
                who = self.touched.get(wf_id, [])
                where = f"{wf_id[:60]} (requests {who[:8]})"
                if status is WorkflowExecutionStatus.TERMINATED:
                    self.report.violations.append(f"terminated: {where}")
                handle = self.temporal.get_workflow_handle(wf_id, run_id=run_id)
                history = await handle.fetch_history()
                for e in history.events:
                    if e.event_type != HistoryEventType.EVENT_TYPE_WORKFLOW_TASK_FAILED:
                        continue
                    attrs = e.workflow_task_failed_event_attributes
                    if (
                        attrs.cause
                        == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND
                    ):
                        continue  # the server's own retry when an event raced a completion
                    self.report.violations.append(
                        f"workflow task failed: {where}: {attrs.failure.message[:200]}"
                    )
                    break

        await asyncio.gather(*(one(wf.id, wf.run_id, wf.status) for wf in listed))
        return len(listed)

    def check_sequences(self, db: Path) -> int:
        """Per session, ``seq`` is 1..n without a gap; returns how many sessions."""
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            rows = conn.execute(
                "SELECT session_id, COUNT(*), MIN(seq), MAX(seq) FROM asm_events"
                " GROUP BY session_id"
            ).fetchall()
        for session_id, count, low, high in rows:
            if low != 1 or high != count:
                self.report.violations.append(
                    f"seq not gap-free in {session_id[:60]}: {count} events, {low}..{high}"
                )
        return len(rows)

    async def check_ownership(self) -> None:
        """Every run still belongs to the session that ran it, whatever reused its id."""
        for session_id, run_id in self.finished_runs:
            row = await self.store.get_run(run_id)
            if row is None or row.session_id != session_id:
                owner = row.session_id if row else None
                self.report.violations.append(
                    f"run {run_id} of {session_id} now belongs to {owner!r}"
                )

    async def check_normal_run(self) -> None:
        """A normal run still works: on a fresh session, and on a fuzzed active one."""
        text = "still fine after the fuzz"
        script = MockScript(steps=[MockText(text=text)])
        sid = (await self.client.start_session(agent_id="after-fuzz")).session_id
        sessions = [sid, *(t.session_id for t in self.pool.get("active", [])[:1])]
        for s in sessions:
            result = await asyncio.wait_for(self.client.run(s, "hello", mock=script), 60)
            if result.output != text:
                self.report.violations.append(
                    f"normal run on {s}: {result.status} {result.output!r}"
                )

    async def cleanup(self) -> None:
        """Terminate what the fuzz left running (after every check)."""
        gate = asyncio.Semaphore(16)

        async def stop(wf_id: str) -> None:
            async with gate:
                try:
                    await self.temporal.get_workflow_handle(wf_id).terminate("fuzz done")
                except RPCError:
                    pass

        query = f'TaskQueue="{self.task_queue}" AND ExecutionStatus="Running"'
        ids = [wf.id async for wf in self.temporal.list_workflows(query)]
        await asyncio.gather(*(stop(i) for i in ids))


async def run_fuzz(
    temporal: Client,
    store: EventStore,
    task_queue: str,
    db: Path,
    requests: list[Request],
    seed: int,
    *,
    lanes: int = 24,
) -> Report:
    """Send every request, then check every invariant; the report holds the verdict."""
    fuzz = Fuzz(temporal, store, task_queue, seed, lanes=lanes)
    t = time.monotonic()
    try:
        await asyncio.gather(*(fuzz.send(r) for r in requests))
        fuzz.report.seconds = time.monotonic() - t
        workflows = await fuzz.check_workflows()
        sessions = fuzz.check_sequences(db)
        await fuzz.check_ownership()
        fuzz.report.outcomes[f"(checked {workflows} workflows, {sessions} event streams)"] = 1
        await fuzz.check_normal_run()
    finally:
        await fuzz.cleanup()
    return fuzz.report


__all__ = ["RAW_CONVERTER", "Fuzz", "Report", "Target", "raw_client", "run_fuzz"]
