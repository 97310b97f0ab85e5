"""Billing one provider attempt: its ledger row, written as the attempt ends, however it ends.

The provider activity opens an :class:`AttemptBill` when it is about to call the provider and
settles it exactly once. A call that completed writes its row with the reply's usage in the
same transaction as the reply (:meth:`AttemptBill.answered`, then
``EventStore.save_reply`` and :meth:`AttemptBill.settled`): one write per call, not two. One
that failed or was cancelled — or whose reply could not be saved — is closed
(:meth:`AttemptBill.close`) with the reply's usage if there was one, else with what the stream
had reported by then (:attr:`activities.sink.StoreSink.usage`: Anthropic's
``message_start``/``message_delta`` usage, the CLIs' usage events, the mock's scripted usage):
a provider bills those tokens too. An attempt that never called the provider (a budget
refused it, its input could not be read) has no row.

The write goes through the attempt's :class:`~activities.store_outage.StoreOutage`: an event
store that is down is waited out, on the activity's own deadline, never by failing the
attempt (which would spend one of the provider's retries and call the model again). Rows are
keyed ``(run_id, step, attempt)`` (an agent loop calls its model once per step), so writing
again after a commit in doubt is a no-op.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

from agent_session_manager.activities.sink import StoreSink
from agent_session_manager.activities.store_outage import StoreOutage
from agent_session_manager.core.contract import RunSpec
from agent_session_manager.core.ledger import LedgerEntry, Outcome, UsageTotal
from agent_session_manager.core.prices import PriceTable, cost_of, default_prices
from agent_session_manager.core.usage import TokenUsage
from agent_session_manager.observability.cost import record_attempt
from agent_session_manager.store import EventStore

log = logging.getLogger(__name__)

#: The credentials each provider may use, by the name of the secret (the alias the ledger
#: keeps: which key paid, never the key).
CREDENTIALS: dict[str, tuple[str, ...]] = {
    "anthropic": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
    "claude-code": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"),
    "codex": ("OPENAI_API_KEY",),
}
#: How long a cancelled attempt waits for a store that is out before giving its row up (its
#: cancellation is waited for by the run, and by a user who pressed cancel).
CANCELLED_WRITE_SECONDS = 5.0


def credential_alias(provider: str, secrets: dict[str, str]) -> str | None:
    """The name of the secret ``provider`` uses on this worker (``None``: none needed/set)."""
    return next((name for name in CREDENTIALS.get(provider, ()) if secrets.get(name)), None)


@dataclass
class Ledger:
    """Prices and writes attempts; one per worker (the activity's dependency)."""

    store: EventStore
    prices: PriceTable = field(default_factory=default_prices)
    _unpriced_warned: set[str] = field(default_factory=set)

    def open(
        self,
        spec: RunSpec,
        step: int,
        attempt: int,
        model: str | None,
        secrets: dict[str, str],
        *,
        alone: bool = True,
    ) -> AttemptBill:
        """The bill of attempt ``attempt`` of model call ``step``, about to call its provider
        (``alone=False``: this attempt billed a summary before it)."""
        return AttemptBill(
            ledger=self,
            spec=spec,
            step=step,
            attempt=attempt,
            model=model,
            credential=credential_alias(spec.provider, secrets),
            alone=alone,
        )

    def price(self, model: str | None, usage: TokenUsage) -> int | None:
        """``usage``'s cost, or ``None`` with a warning (once per model) when unpriced."""
        cost = cost_of(self.prices, model, usage)
        if cost is None and (model or "") not in self._unpriced_warned:
            self._unpriced_warned.add(model or "")
            log.warning(
                "no price for model %r in price table %s: its attempts are recorded with "
                "their tokens and a null cost; add it with ASM_PRICES_FILE",
                model,
                self.prices.version,
            )
        return cost


@dataclass
class AttemptBill:
    """One attempt's ledger row, written once: with its reply (:meth:`answered`,
    :meth:`settled`) or by :meth:`close`."""

    ledger: Ledger
    spec: RunSpec
    step: int
    attempt: int
    model: str | None
    credential: str | None
    alone: bool = True
    run_total: UsageTotal | None = None
    closed: bool = False
    #: The completed row :meth:`answered` made, until :meth:`settled` (or :meth:`close`).
    reply: LedgerEntry | None = None

    def entry(
        self,
        outcome: Outcome,
        usage: TokenUsage,
        *,
        thinking_tokens: int | None = None,
        model: str | None = None,
        error_code: str | None = None,
    ) -> LedgerEntry:
        """The attempt's row."""
        model = model or self.model
        cost = self.ledger.price(model, usage)
        return LedgerEntry(
            run_id=self.spec.run_id,
            step=self.step,
            attempt=self.attempt,
            session_id=self.spec.session_id,
            agent_id=self.spec.agent_id,
            tenant=self.spec.tenant,
            provider=self.spec.provider,
            model=model,
            credential=self.credential,
            usage=usage,
            thinking_tokens=thinking_tokens,
            cost_micros=cost,
            price_version=None if cost is None else self.ledger.prices.version,
            outcome=outcome,
            error_code=error_code,
            day=datetime.now(UTC).date().isoformat(),
        )

    def answered(self, sink: StoreSink, usage: TokenUsage, model: str | None = None) -> LedgerEntry:
        """The row of an attempt whose provider answered with ``usage``, for the caller to
        write with the reply (``EventStore.save_reply``), then :meth:`settled`. Until then
        the bill stays open: if the reply cannot be saved, :meth:`close` bills this usage."""
        self.reply = self.entry(
            "completed",
            usage,
            thinking_tokens=sink.thinking_tokens,
            model=model or sink.model,
        )
        return self.reply

    def settled(self, entry: LedgerEntry, run_total: UsageTotal) -> UsageTotal:
        """``entry`` (:meth:`answered`'s) was written with the reply; ``run_total`` is what
        that write returned. The bill is closed: a later :meth:`close` writes nothing."""
        self.closed = True
        self.run_total = run_total
        record_attempt(entry)
        return run_total

    async def close(
        self,
        sink: StoreSink,
        outage: StoreOutage,
        outcome: Outcome,
        *,
        usage: TokenUsage | None = None,
        model: str | None = None,
        error_code: str | None = None,
    ) -> UsageTotal | None:
        """Write the row (once); the run's total over all its attempts, ``None`` if the store
        could not take it before the activity's deadline (the row is then lost: logged).
        Without ``usage``: the reply's (:meth:`answered`), else what the stream reported."""
        if self.closed:
            return self.run_total
        self.closed = True
        reply = self.reply
        if usage is None:
            usage = sink.usage if reply is None else reply.usage
        entry = self.entry(
            outcome,
            usage,
            thinking_tokens=sink.thinking_tokens,
            model=model or (reply.model if reply is not None else sink.model),
            error_code=error_code,
        )
        record_attempt(entry)
        if outcome == "cancelled":
            # Bounded: a cancel must not wait for a store outage to end.
            outage = StoreOutage(
                outage.heartbeat,
                deadline=min(outage.deadline, time.monotonic() + CANCELLED_WRITE_SECONDS),
            )
        try:
            self.run_total = await outage.outlast(
                lambda: self.ledger.store.bill(entry, alone=self.alone),
                f"billing call {self.step} attempt {self.attempt}",
            )
        except Exception:
            log.error(
                "ledger row of run %s attempt %d not written (%s, %d tokens)",
                self.spec.run_id,
                self.attempt,
                outcome,
                entry.usage.total_tokens,
                exc_info=True,
            )
            return None
        return self.run_total


__all__ = ["CREDENTIALS", "AttemptBill", "Ledger", "credential_alias"]
