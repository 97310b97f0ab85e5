"""An attempt's heartbeat, paced by the worker's heartbeat throttle.

Each heartbeat Core sends is a round trip to the server (it records the attempt's progress
and answers with any cancel request). Core sends an attempt's first heartbeat at once and
later ones at most once per throttle interval (the worker's ``heartbeat_throttle_seconds``),
so a cancel requested during the first interval reaches the attempt at the interval's end
whether or not it heartbeat at its start. Heartbeats before then buy nothing: skipping them
spares a short attempt (a quick model call, a mock reply) the server round trip and the
SDK's work per call. Later calls are passed on at most once per interval too: Core would
hold the others back anyway, and each one costs the SDK a task and a details conversion.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Heartbeat:
    """``send`` (``activity.heartbeat``) from ``every`` seconds into the attempt, at most once
    per ``every`` seconds."""

    def __init__(self, send: Callable[..., None], every: float) -> None:
        self._send = send
        self._every = every
        self._next = time.monotonic() + every

    def __call__(self, *details: Any) -> None:
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self._every
            self._send(*details)


__all__ = ["Heartbeat"]
