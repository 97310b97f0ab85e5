"""Waiting out outages: a caller that waits for a run sees progress, not a failure.

A run lives on in the worker while the client loses Temporal or the event store: the calls
that *wait* (:meth:`SessionClient.wait_run`, :meth:`~SessionClient.result`,
:meth:`~SessionClient.stream_events`, :meth:`~SessionClient.stream_text`) keep waiting through
an outage, with backoff, and resume where they were (a stream from its cursor, so no event is
lost or repeated). While they wait they report it, through :attr:`Patience.on_progress`, as an
:class:`Outage` naming the component that is down: ``Temporal at 127.0.0.1:7233 unreachable
(tcp connect error), retrying for 290 s…``. When :attr:`Patience.seconds` runs out, the last
error is raised: its code names the component (``temporal_unavailable``,
``storage_connection_failed``), never ``run_not_found`` or ``provider_unavailable``.

Temporal's own client retries each call for about 10 s before it gives up, so the first report
of a Temporal outage comes that late; a store outage is reported after the store's own short
reconnect attempts (:data:`client.session_client.STORE_BLIP_SECONDS`).

One-shot calls (start, submit, describe, updates, signals, listing) do not wait: they fail at
once with the same typed codes, for the caller to decide; ``Patience(seconds=0)`` makes the
waiting calls behave the same way.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

from agent_session_manager.core.errors import AsmError, ErrorCode

Component = Literal["temporal", "store"]
"""What can be unreachable from the client."""

#: The codes that mean "a component is unreachable", and which one: only these are waited out.
OUTAGE_CODES: dict[ErrorCode, Component] = {
    "temporal_unavailable": "temporal",
    "storage_connection_failed": "store",
}

_log = logging.getLogger("agent_session_manager.client")

T = TypeVar("T")


@dataclass(frozen=True)
class Outage:
    """A progress report: ``component`` at ``where`` has been unreachable for ``waited`` s."""

    component: Component
    where: str
    waited: float
    remaining: float | None
    """Seconds of patience left; None: waiting for as long as it takes."""
    error: AsmError

    def __str__(self) -> str:
        name = "Temporal" if self.component == "temporal" else "the event store"
        left = "until it is back" if self.remaining is None else f"for {self.remaining:.0f} s"
        # The cause alone: the error's full message repeats the address and the advice.
        cause = self.error.details.get("cause") or self.error.message
        return f"{name} at {self.where} unreachable ({cause}), retrying {left}…"


def _log_progress(outage: Outage) -> None:
    _log.warning("%s", outage)


@dataclass(frozen=True)
class Patience:
    """How the waiting calls of :class:`SessionClient` ride out an outage.

    ``seconds`` is how long one outage is waited out (None: forever; 0: fail at once);
    retries back off from ``initial_backoff`` to ``max_backoff``; ``on_progress`` hears of
    the outage when it is first seen and then at most every ``report_every`` seconds (the
    default logs a warning on ``agent_session_manager.client``).
    """

    seconds: float | None = 300.0
    initial_backoff: float = 0.1
    # Short: a try against a component that is down costs little (a refused connection; the
    # Temporal SDK adds its own ~10 s of retries inside each call), while a long pause of ours
    # would only delay noticing that the component is back.
    max_backoff: float = 0.5
    report_every: float = 5.0
    on_progress: Callable[[Outage], None] = _log_progress

    def __post_init__(self) -> None:
        if self.seconds is not None and not (self.seconds >= 0 and math.isfinite(self.seconds)):
            raise ValueError(f"Patience.seconds must be finite and >= 0, or None: {self.seconds}")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("Patience needs 0 < initial_backoff <= max_backoff")


@dataclass(frozen=True)
class Step:
    """What to do after one more failure of an outage: :func:`next_step`'s verdict."""

    give_up: bool
    report: bool
    delay: float
    """Seconds to sleep before the next try."""
    backoff: float
    """The delay after the next failure, if there is one."""


def next_step(
    patience: Patience, waited: float, since_report: float | None, backoff: float
) -> Step:
    """The policy, pure: give up once ``waited`` reaches the patience; report the first failure
    and then every ``report_every`` s; sleep the backoff (never past the patience), doubling
    it up to ``max_backoff``. ``since_report`` is None when nothing was reported yet."""
    limit = patience.seconds
    if limit is not None and waited >= limit:
        return Step(give_up=True, report=False, delay=0.0, backoff=backoff)
    report = since_report is None or since_report >= patience.report_every
    delay = backoff if limit is None else min(backoff, limit - waited)
    return Step(
        give_up=False,
        report=report,
        delay=delay,
        backoff=min(backoff * 2, patience.max_backoff),
    )


class OutageWaiter:
    """One waiting call's view of an outage: backs off, reports, and knows when to give up.

    Call :meth:`wait_out` with each failure (it re-raises anything that is not an outage, or
    an outage that outlasted the patience) and :meth:`recovered` after a success.
    """

    def __init__(self, patience: Patience, where: Callable[[Component], str]) -> None:
        self.patience = patience
        self._where = where
        self._since: float | None = None
        self._reported: float | None = None
        self._backoff = patience.initial_backoff
        #: Outages ridden out so far (each a maximal stretch of failures).
        self.outages = 0

    async def wait_out(self, err: AsmError) -> None:
        """Sleep before the next try, or raise ``err`` if it is not worth another."""
        component = OUTAGE_CODES.get(err.code)
        if component is None:
            raise err
        now = asyncio.get_running_loop().time()
        if self._since is None:
            self._since = now
            self.outages += 1
        waited = now - self._since
        since_report = None if self._reported is None else now - self._reported
        step = next_step(self.patience, waited, since_report, self._backoff)
        if step.give_up:
            if waited > 0:
                err.message = f"{err.message} (waited {waited:.0f} s)"
            raise err
        if step.report:
            self._reported = now
            limit = self.patience.seconds
            remaining = None if limit is None else limit - waited
            self.patience.on_progress(
                Outage(component, self._where(component), waited, remaining, err)
            )
        self._backoff = step.backoff
        await asyncio.sleep(step.delay)

    def recovered(self) -> None:
        """The component answered: the next failure starts a new outage."""
        self._since = None
        self._reported = None
        self._backoff = self.patience.initial_backoff

    async def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """``await fn()``, tried again through outages until it answers or patience ends."""
        while True:
            try:
                result = await fn()
            except AsmError as err:
                await self.wait_out(err)
                continue
            self.recovered()
            return result
