"""An Anthropic fake that enforces an account's limits, as the real API does.

:class:`RateLimitedFake` answers ``POST /v1/messages`` like :class:`AnthropicFake` while the
account is within its limits: at most ``max_concurrent`` requests in flight and a
requests-per-minute token bucket (capacity ``rpm``, refilled continuously: how Anthropic
documents its rate limiter). Beyond either it answers ``429 rate_limit_error`` with
``retry-after`` (whole seconds until a token is back, at least 1) and the
``anthropic-ratelimit-requests-*`` headers, and counts it. Observations: ``max_in_flight``,
``accepted``, ``rejected`` (429s), ``in_flight_samples`` (time, in flight after each change).
"""

from __future__ import annotations

import math
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.fakes.anthropic_server import AnthropicFake, HttpError, RecordedRequest, _Connection


class RateLimitedFake(AnthropicFake):
    """See the module docstring; every other behaviour is :class:`AnthropicFake`'s."""

    def __init__(self, *, max_concurrent: int, rpm: int, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_concurrent = max_concurrent
        self.rpm = rpm
        self.in_flight = 0
        self.max_in_flight = 0
        self.accepted = 0
        self.rejected = 0
        self.rejected_concurrency = 0
        self.in_flight_samples: list[tuple[float, int]] = []
        self._tokens = float(rpm)
        self._refilled = time.monotonic()

    def _take(self) -> float:
        """Take a token: 0, or seconds until one is there."""
        now = time.monotonic()
        rate = self.rpm / 60.0
        self._tokens = min(float(self.rpm), self._tokens + (now - self._refilled) * rate)
        self._refilled = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / rate

    def _headers(self, wait: float) -> dict[str, str]:
        reset = datetime.now(UTC) + timedelta(seconds=wait)
        return {
            "anthropic-ratelimit-requests-limit": str(self.rpm),
            "anthropic-ratelimit-requests-remaining": str(int(self._tokens)),
            "anthropic-ratelimit-requests-reset": reset.isoformat().replace("+00:00", "Z"),
        }

    async def _messages(self, conn: _Connection, request: RecordedRequest) -> bool:
        if self.in_flight >= self.max_concurrent:
            self.rejected += 1
            self.rejected_concurrency += 1
            await self._send_error(
                conn,
                request,
                HttpError(429, message="too many concurrent requests", retry_after=1),
            )
            return True
        wait = self._take()
        if wait > 0:
            self.rejected += 1
            await self._send_error(
                conn,
                request,
                HttpError(
                    429,
                    message=f"rate limit of {self.rpm} requests per minute exceeded",
                    retry_after=max(1, math.ceil(wait)),
                    headers=self._headers(wait),
                ),
            )
            return True
        self.accepted += 1
        self._moved(+1)
        try:
            return await super()._messages(conn, request)
        finally:
            self._moved(-1)

    def _moved(self, delta: int) -> None:
        self.in_flight += delta
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        self.in_flight_samples.append((time.monotonic(), self.in_flight))
