"""An attempt's heartbeat, paced by the worker's heartbeat throttle and the attempt's age.

Each heartbeat Core sends is a round trip to the server (it records the attempt's progress
and answers with any cancel request). Core sends an attempt's first heartbeat at once and
later ones at most once per throttle interval (the worker's ``heartbeat_throttle_seconds``),
so a cancel requested during the first interval reaches the attempt at the interval's end
whether or not it heartbeat at its start. Heartbeats before then buy nothing: skipping them
spares a short attempt (a quick model call, a mock reply) the server round trip and the
SDK's work per call.

Later heartbeats come further apart, each interval twice the last, up to ``most`` (half a
second by default). A young attempt, which is when most cancels come (the user sees the reply
start and stops it), hears a cancel within the throttle; an older one within ``most``. A
heartbeat costs about 2.7 ms of CPU (0.6 ms in the worker, 2.1 ms in the server;
``bench/heartbeat_cost.py``), and on a saturated worker attempts live longer *because* it is
saturated: at a fixed pace an attempt spends the most heartbeats exactly when the machine has
the least to spare (8 to 9 per mock run with 50 sessions on 2 cores; about 3 with the backoff).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

#: The longest interval between an attempt's heartbeats (unless the throttle is longer).
MOST_SECONDS = 0.5


class Heartbeat:
    """``send`` (``activity.heartbeat``) from ``every`` seconds into the attempt, then at
    intervals doubling from ``every`` up to ``most`` (at least ``every``)."""

    def __init__(
        self,
        send: Callable[..., None],
        every: float,
        most: float = MOST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._clock = clock
        self._interval = every
        self._most = max(every, most)
        self._next = clock() + every

    def __call__(self, *details: Any) -> None:
        now = self._clock()
        if now >= self._next:
            self._interval = min(self._interval * 2, self._most)
            self._next = now + self._interval
            self._send(*details)


__all__ = ["MOST_SECONDS", "Heartbeat"]
