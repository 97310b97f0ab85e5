"""The provider activity: one attempt of one run, streamed into the event store.

It reads the conversation from SQL (never from workflow payloads), reads its prompt and
system prompt back when they came by reference (:mod:`activities.content`), runs the provider
through a :class:`~activities.sink.StoreSink`, and on success stores the assistant message
together with the attempt's last events and its ledger row in one transaction; a long reply
is returned by reference. Failures leave the attempt as an ``error_occurred`` event and an
``ApplicationError`` whose type is the taxonomy code, so the retry policy decides;
cancellation flushes what was streamed and re-raises.

It also records the run's ``run_started`` and, on success, ``run_completed`` and tells the
session (signal ``run_finished``): the workflow would otherwise spend a local activity and a
workflow task on each. A retry after a success that was recorded but never reported (worker
lost) returns the recorded outcome instead of calling the provider again.

A store outage during the attempt is waited out inside it (:mod:`activities.store_outage`),
up to the activity's deadline: it never spends one of the provider's attempts, and a reply the
model has already given is saved once the store is back, not asked for again.

Money: before the call every budget that applies is checked (:mod:`activities.budget`), so a
call that would pass one is never sent; once the provider was called, the attempt's ledger
row is written however it ends (:mod:`activities.ledger`; a completed call's with its reply),
and the outcome (or the error) says what the run's attempts cost so far.
"""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from temporalio import activity
from temporalio.service import RPCError

from agent_session_manager.activities.agent_loop import AgentLoop, tool_results_message
from agent_session_manager.activities.budget import Budgets
from agent_session_manager.activities.cli_approvals import RunApprovals, attempt_started
from agent_session_manager.activities.content import read_inputs, store_reply
from agent_session_manager.activities.heartbeat import MOST_SECONDS, Heartbeat
from agent_session_manager.activities.history import ConversationHistory
from agent_session_manager.activities.ledger import AttemptBill, Ledger
from agent_session_manager.activities.limits import FleetLimits
from agent_session_manager.activities.providers.base import Provider, ProviderRequest
from agent_session_manager.activities.sink import StoreSink
from agent_session_manager.activities.store_outage import StoreOutage, activity_deadline
from agent_session_manager.core.budget import BudgetPolicy
from agent_session_manager.core.contract import (
    AttemptFailed,
    LifecycleRecord,
    Message,
    ProviderCall,
    ProviderOutcome,
    RunFinished,
    RunResult,
    run_workflow_id,
    session_workflow_id,
)
from agent_session_manager.core.errors import MAX_MESSAGE_BYTES, AsmError, ProviderErrorInfo, error
from agent_session_manager.core.events import EventType
from agent_session_manager.core.ledger import UsageTotal
from agent_session_manager.core.lifecycle import completed_result, run_ended, run_started
from agent_session_manager.core.prices import PriceTable, default_prices
from agent_session_manager.core.protocol import (
    ATTEMPT_FAILED,
    RUN_FINISHED,
    STREAM_PROVIDER_ACTIVITY,
)
from agent_session_manager.core.status import RunStatus
from agent_session_manager.core.temporal import to_application_error
from agent_session_manager.core.tools import ToolSpec
from agent_session_manager.observability.log_failures import (
    log_failed_attempt,
    quiet_failed_attempts,
)
from agent_session_manager.observability.provider_call import note_result, traced_provider_call
from agent_session_manager.observability.redaction import secret_values
from agent_session_manager.store import EventStore

log = logging.getLogger(__name__)


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _cost(total: UsageTotal) -> dict[str, Any]:
    """The run's cost fields of an outcome, from the ledger's total."""
    return {"cost_micros": total.cost_micros, "billed_usage": total.usage}


@dataclass
class ProviderActivities:
    """Activities that call providers; dependencies are injected by the worker."""

    store: EventStore
    providers: dict[str, Provider]
    secrets: dict[str, str] = field(default_factory=dict, repr=False)
    #: Tools installed on this worker, by name: the model is offered the run's.
    tools: dict[str, ToolSpec] = field(default_factory=dict)
    flush_interval: float = 0.05
    tick: float = 0.1
    prices: PriceTable | None = None
    """The price table (default: the shipped one, ``core/prices.json``)."""
    budgets: BudgetPolicy = field(default_factory=BudgetPolicy)
    """The worker's budgets; a session's own (``SessionSpec.budget``) comes with its runs."""
    #: Fleet-wide slots, cooldowns and budgets (:mod:`activities.limits`); None: no limits.
    fleet: FleetLimits | None = None
    #: The worker's heartbeat throttle: an attempt heartbeats at most this often, and not
    #: before this long; later ones further apart (:mod:`activities.heartbeat`).
    heartbeat_every: float = 0.2

    def __post_init__(self) -> None:
        quiet_failed_attempts()  # our own line per failed attempt replaces the SDK's
        self._ledger = Ledger(self.store, self.prices or default_prices())
        self._budgets = Budgets(self.store, self.budgets)
        self._history = ConversationHistory(self.store, self._ledger, self.secrets)

    @activity.defn(name=STREAM_PROVIDER_ACTIVITY)
    @traced_provider_call  # one GenAI span + provider metrics per attempt
    async def stream_provider(self, call: ProviderCall) -> ProviderOutcome:
        """Run one attempt of ``call.spec`` against its provider."""
        spec = call.spec
        info = activity.info()
        attempt = info.attempt
        if attempt > 1:  # what earlier attempts' CLIs asked for will never reach them
            await attempt_started(spec, self.store)
        provider = self.providers.get(spec.provider)
        if provider is None:
            raise to_application_error(
                error(
                    "provider_unavailable",
                    f"provider {spec.provider!r} is not installed on this worker",
                    retryable=False,
                )
            )
        # A quarter of the heartbeat timeout at most: a heartbeat is never late for it.
        quarter = spec.heartbeat_timeout_seconds / 4
        beat = Heartbeat(
            activity.heartbeat, min(self.heartbeat_every, quarter), most=min(MOST_SECONDS, quarter)
        )
        outage = StoreOutage(
            beat,
            deadline=activity_deadline(info.scheduled_time, info.schedule_to_close_timeout),
        )
        sink = StoreSink(
            self.store,
            session_id=spec.session_id,
            run_id=spec.run_id,
            attempt=attempt,
            provider=spec.provider,
            heartbeat=beat,
            flush_interval=self.flush_interval,
            outage=outage,
            # The first model call keeps the ids runs always had; later ones get their own.
            id_scope=spec.run_id if call.step == 1 else f"{spec.run_id}/m{call.step}",
        )
        bill: AttemptBill | None = None
        # Holds the run's fleet-wide slot from before run_started until the provider answered.
        slot = AsyncExitStack()
        try:
            loop = AgentLoop.of(call, self.tools)
            if attempt > 1 and (
                done := await outage.outlast(
                    lambda: self._already_completed(spec.run_id), "checking for a recorded reply"
                )
            ):
                return done
            if self.fleet is not None:
                await slot.enter_async_context(
                    self.fleet.lease(
                        spec,
                        attempt=attempt,
                        model=spec.model or provider.default_model or "default",
                        heartbeat=beat,
                        ttl=spec.heartbeat_timeout_seconds,
                        step=call.step,
                    )
                )
            inputs = await outage.outlast(
                lambda: read_inputs(self.store, spec), "reading the run's input"
            )
            if call.step == 1:
                started = run_started(spec, now=_now(), prompt=inputs.prompt)
                sink.write_first(
                    outage.outlast(lambda: self.store.record(started), "recording run_started")
                )
                messages = inputs.messages
            else:
                # The loop goes on: the run's transcript as the previous call saved it, then
                # the tool results (a retry of this call never sees its own earlier save).
                saved = await outage.outlast(
                    lambda: self.store.run_messages(spec.run_id), "reading the run's transcript"
                )
                results = await outage.outlast(
                    lambda: tool_results_message(self.store, call.tool_results),
                    "reading tool results",
                )
                messages = [*saved[: call.prefix], results]
            # Before anything is sent: a call that would pass a budget fails here, final.
            await self._budgets.check(spec, sink, outage)
            # The context policy's window (summarize: may call the provider for a summary).
            history = await self._history.read(spec, provider, attempt, outage, call.step)
            request = ProviderRequest(
                session_id=spec.session_id,
                run_id=spec.run_id,
                attempt=attempt,
                turn=spec.turn,
                model=spec.model or provider.default_model,
                system_prompt=inputs.system_prompt,
                history=history.messages,
                messages=messages,
                options=spec.provider_options,
                mock=spec.mock,
                secrets=self.secrets,
                tools=loop.offered,
                step=call.step,
                approvals=RunApprovals(spec, sink),
            )
            bill = self._ledger.open(
                spec, call.step, attempt, request.model, self.secrets, alone=not history.summarized
            )
            result = await sink.run_with_ticker(
                provider.stream(request, sink),
                tick=self.tick,
                silence_limit=spec.heartbeat_timeout_seconds,
            )
            await slot.aclose()  # the provider has answered: the next run may call it
            note_result(result)  # response model and stop reason for the provider span
            # Written with the reply below, whose outcome carries every attempt's cost.
            entry, alone = bill.answered(sink, result.usage, result.model), bill.alone
            assistant = Message(
                role="assistant", content=result.content or result.text or "(no text)"
            )
            if attempt > 1:
                # Marks the earlier attempts' partial output as superseded in the log.
                await sink.emit(
                    EventType.ERROR_RECOVERED,
                    {"attempt": attempt, "superseded_attempts": list(range(1, attempt))},
                )
            # Like the save below: an outage is waited out, the model is never called again.
            output, output_ref = await outage.outlast(
                lambda: store_reply(self.store, result.text), "storing the reply"
            )
            transcript = [*messages, assistant]
            tool_calls = await outage.outlast(
                lambda: loop.calls(self.store, result), "storing tool arguments"
            )

            def outcome_of(billed: UsageTotal) -> ProviderOutcome:
                return ProviderOutcome(
                    output=output,
                    output_ref=output_ref,
                    stop_reason=result.stop_reason,
                    usage=call.usage_before + result.usage,
                    attempt=attempt,
                    **_cost(billed),
                    tool_calls=tool_calls,
                    messages=len(transcript),
                )

            ended_at = _now()

            def completed(billed: UsageTotal) -> LifecycleRecord:
                """The run's ``run_completed``, with what its attempts cost."""
                ended = completed_result(spec, outcome_of(billed))
                return run_ended(spec, ended, now=ended_at, output=result.text)

            # One transaction: the ledger row, the transcript, the attempt's last events and,
            # unless the workflow runs tools and calls the model again, run_completed. The
            # reply is complete: from here an outage is waited out, never retried by calling
            # the model again.
            await sink.written_first()
            events = sink.take()
            stored = await outage.outlast(
                lambda: self.store.save_reply(
                    spec.session_id,
                    spec.run_id,
                    spec.turn,
                    transcript,
                    events,
                    bill=entry,
                    alone=alone,
                    ending=None if tool_calls else completed,
                ),
                "saving the reply",
            )
            outcome = outcome_of(bill.settled(entry, stored.total))
            if tool_calls:
                return outcome
            self._history.forget(spec.run_id)
            ended = completed_result(spec, outcome)
        except asyncio.CancelledError:
            await asyncio.shield(self._flush_quietly(sink))
            if bill is not None:
                await asyncio.shield(bill.close(sink, outage, "cancelled", error_code="cancelled"))
            raise
        except AsmError as err:
            clean = self._failed(err, spec.provider, attempt)
            await slot.aclose()
            if self.fleet is not None:
                model = spec.model or provider.default_model or "default"
                cooldown = await self.fleet.note_failure(spec, model, clean)
                if cooldown:  # Temporal retries no sooner than the fleet's shared cooldown
                    info_ = clean.provider_error or ProviderErrorInfo()
                    info_.retry_after = max(info_.retry_after or 0.0, cooldown)
                    clean.provider_error = info_
            await self._bill_failure(bill, sink, outage, clean)
            await self._record_failure(sink, clean)
            await self._tell_run(spec.run_id, clean)
            # Without the chain: it quotes the provider's whole answer (and maybe the key).
            raise to_application_error(clean) from None
        except Exception as exc:
            crash = self._failed(
                error(
                    "internal_error",
                    f"provider {spec.provider!r} raised {type(exc).__name__}: {exc}",
                    retryable=False,
                ),
                spec.provider,
                attempt,
                cause=exc,
            )
            await self._bill_failure(bill, sink, outage, crash)
            await self._record_failure(sink, crash)
            await self._tell_run(spec.run_id, crash)
            raise to_application_error(crash) from None
        finally:
            await slot.aclose()  # every other ending: failure, cancel, timeout
        await self._tell_session(RunFinished.of(ended, spec.token))
        return outcome

    def _failed(
        self, err: AsmError, provider: str, attempt: int, cause: BaseException | None = None
    ) -> AsmError:
        """``err`` as the attempt reports it: the worker's secrets redacted, the attempt
        noted (the run reports its attempts), logged once."""
        clean = err.scrubbed(self.secrets.values())
        clean.details = {**clean.details, "attempt": attempt}
        log_failed_attempt(
            clean,
            provider=provider,
            attempt=attempt,
            cause=cause or err,
            # Logs keep base URLs (where the worker sends its calls); history does not.
            secrets=secret_values(self.secrets, self.secrets),
        )
        return clean

    async def _bill_failure(
        self, bill: AttemptBill | None, sink: StoreSink, outage: StoreOutage, err: AsmError
    ) -> None:
        """Bill a failed attempt (if the provider was called) and note the run's cost so far
        on its error, where the run's result is built from."""
        if bill is None:
            return
        billed = await bill.close(sink, outage, "failed", error_code=err.code)
        if billed is not None:
            cost = _cost(billed)
            err.details = {
                **err.details,
                "cost_micros": cost["cost_micros"],
                "billed_usage": cost["billed_usage"].model_dump(exclude={"total_tokens"}),
            }

    async def _already_completed(self, run_id: str) -> ProviderOutcome | None:
        row = await self.store.get_run(run_id)
        if row is None or row.status is not RunStatus.COMPLETED:
            return None
        # The row holds the whole reply. A long one was stored before the row said completed,
        # unless an older worker completed it: storing again is a no-op write otherwise.
        output, output_ref = await store_reply(self.store, row.output or "")
        return ProviderOutcome(
            output=output,
            output_ref=output_ref,
            stop_reason=row.stop_reason,
            usage=row.usage,
            attempt=row.attempts,
            **_cost(await self.store.run_total(run_id)),
        )

    async def _tell_session(self, result: RunResult) -> None:
        """Free the run's slot in its session before the run's end becomes visible."""
        handle = activity.client().get_workflow_handle(session_workflow_id(result.session_id))
        try:
            await handle.signal(RUN_FINISHED, result)
        except RPCError as exc:  # no such session (a run started on its own): nothing to tell
            log.info("run %s: session not signalled: %s", result.run_id, exc.message)

    async def _tell_run(self, run_id: str, err: AsmError) -> None:
        """Leave this attempt's error in the run's history (Temporal keeps only the last
        attempt's failure), where the run's page in the Temporal UI shows it."""
        failed = AttemptFailed(
            attempt=activity.info().attempt,
            code=err.code,
            message=err.message[: 4 * MAX_MESSAGE_BYTES],
            retryable=err.retryable,
        )
        try:
            handle = activity.client().get_workflow_handle(run_workflow_id(run_id))
            await handle.signal(ATTEMPT_FAILED, failed)
        except (RPCError, RuntimeError) as exc:  # the run is gone, or no client (a unit test)
            log.info("run %s: attempt failure not signalled: %s", run_id, exc)

    async def _flush_quietly(self, sink: StoreSink) -> None:
        try:
            await sink.flush()
        except Exception:  # the store may be the reason we stop; the attempt is over anyway
            log.warning("final flush failed for run %s", sink.run_id, exc_info=True)

    async def _record_failure(self, sink: StoreSink, err: AsmError) -> None:
        data: dict[str, Any] = {
            "attempt": sink.attempt,
            "code": err.code,
            "category": err.category,
            "message": err.message,
            "retryable": err.retryable,
        }
        if err.provider_error is not None:
            data["provider_error"] = err.provider_error.model_dump(exclude_none=True)
        try:
            await sink.flush(extra=[sink.draft(EventType.ERROR_OCCURRED, data)])
        except Exception:
            log.warning("could not record error_occurred for run %s", sink.run_id, exc_info=True)
            return
        if sink.unwritten:  # the store is out: the attempt ends without waiting for it
            log.warning("store unavailable: error_occurred of run %s not recorded", sink.run_id)
