"""The conversation window kept between turns: each read costs what changed since the last.

A run reads its session's conversation before calling its model. Read from SQL, even the
window the context policy sends costs what the window holds (200 messages by default: about
50 KB to build, move and parse), so turn 1,000 cost twice turn 2 and more on PostgreSQL. The
store therefore keeps, per session, the newest runs of the conversation it last read
(*the snapshot*) with the session's conversation version (``store._context_version``). The next
read asks SQL only for the runs stamped after that version (usually the one run since the
last turn, often none) and fits the policy from memory: one small indexed query, whatever the
session's length or the window's size.

A snapshot holds every counting run with ``turn >= floor`` as of its version (``floor`` 0: the
whole conversation). A read is answered from it only when that is provably what SQL would
return: the policy's window filled up before reaching the floor, or the floor is 0. Otherwise
(a run inside the window rolled back or failed, a read for an older turn, a wider policy) the
store reads the window from SQL, as it did before, and keeps that as the new snapshot.

Bounded: at most ``max_chars`` message characters across sessions, least recently read
dropped first (a dropped session's next read is the SQL read again).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncConnection

from agent_session_manager.core.context import fit_runs, message_chars
from agent_session_manager.core.contract import ContextPolicy
from agent_session_manager.store import _conversation
from agent_session_manager.store._conversation import SavedRun
from agent_session_manager.store._engine import Backend

#: Message characters kept across all sessions: 64 Mi characters is at most a few hundred MB
#: of worker memory in the worst case (and about 15 KB x 2 messages x turns in the usual one);
#: a worker serving 10,000 sessions keeps the most recently read few hundred full windows.
DEFAULT_MAX_CHARS = 64 * 2**20

#: Reads past the newest turn (the cold read keeps every turn, not only those below the
#: reader's: a run saved earlier at a higher turn would otherwise never reach the snapshot).
#: The largest value the ``turn`` column (a 32-bit integer) holds.
_ALL_TURNS = 2**31 - 1


@dataclass
class _Snapshot:
    version: int
    floor: int
    runs: dict[str, SavedRun] = field(default_factory=dict)
    chars: int = 0


def _weight(run: SavedRun) -> int:
    return sum(message_chars(m) for m in run.messages)


class ContextCache:
    """Per-session snapshots of the conversation's newest runs (see the module docstring)."""

    def __init__(self, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self._max_chars = max_chars
        self._chars = 0
        self._snapshots: OrderedDict[str, _Snapshot] = OrderedDict()

    async def runs(
        self,
        conn: AsyncConnection,
        backend: Backend,
        session_id: str,
        before_turn: int,
        policy: ContextPolicy,
    ) -> list[SavedRun]:
        """The runs ``EventStore.conversation`` sends for ``policy`` (oldest first), from the
        snapshot if it can."""
        snap = self._snapshots.get(session_id)
        if snap is not None:
            changes = await _conversation.changed_runs(conn, session_id, snap.version)
            self._apply(session_id, snap, changes)
            answer = self._answer(session_id, snap, before_turn, policy)
            if answer is not None:
                self._snapshots.move_to_end(session_id)
                return answer
        # Cold: the version first, then the window, so the window holds at least that version
        # (a change committed in between is read twice, which is harmless).
        version = await _conversation.version(conn, session_id)
        # Twice the window: a snapshot proves its window full only with an older run that
        # did not fit in it (see _answer), so it reads past the window's edge.
        runs, complete = await _conversation.window(
            conn, backend, session_id, _ALL_TURNS, 2 * (policy.max_messages + 1)
        )
        if not complete:
            # The oldest turn read may be cut short (the read stops at a row, not a run).
            cut = runs[-1].turn
            runs = [r for r in runs if r.turn > cut]
            floor = cut + 1
        else:
            floor = 0
        snap = _Snapshot(version=version, floor=floor)
        for run in runs:
            snap.runs[run.run_id] = run
            snap.chars += _weight(run)
        self._put(session_id, snap)
        answer = self._answer(session_id, snap, before_turn, policy)
        if answer is not None:
            return answer
        # Turns at or past ``before_turn`` filled the window (concurrent runs, a retried run's
        # own messages): read exactly this turn's window, as the store did before the cache.
        return await _conversation.fitted(conn, backend, session_id, before_turn, policy)

    def _apply(
        self, session_id: str, snap: _Snapshot, changes: list[tuple[str, int, SavedRun | None]]
    ) -> None:
        before = snap.chars
        for run_id, version, run in changes:
            old = snap.runs.get(run_id)
            if old is not None and old.version >= version:
                continue  # a concurrent read of this process already applied it
            if old is not None:
                del snap.runs[run_id]
                snap.chars -= _weight(old)
            # Below the floor the snapshot promises nothing, so a run there is not kept.
            if run is not None and run.turn >= snap.floor:
                snap.runs[run_id] = run
                snap.chars += _weight(run)
            snap.version = max(snap.version, version)
        self._resized(session_id, snap, before)

    def _answer(
        self, session_id: str, snap: _Snapshot, before_turn: int, policy: ContextPolicy
    ) -> list[SavedRun] | None:
        below = sorted(
            (r for r in snap.runs.values() if r.turn < before_turn),
            key=lambda r: (r.turn, r.run_id),
            reverse=True,
        )
        kept = fit_runs([r.messages for r in below], policy, complete=True)
        fitted = below[:kept][::-1]
        if kept == len(below):
            # Every run fitted: older ones, below the floor, might have fitted too, unless
            # the window holds all the messages it may (an older run has at least one).
            full = sum(len(r.messages) for r in fitted) == policy.max_messages
            return fitted if snap.floor == 0 or full else None
        # The window filled up at run ``kept``, which did not fit: it stays as the witness
        # of that, and older runs are let go (a later turn's window starts no earlier).
        oldest = below[kept].turn
        if oldest > snap.floor:
            before = snap.chars
            for run in [r for r in snap.runs.values() if r.turn < oldest]:
                del snap.runs[run.run_id]
                snap.chars -= _weight(run)
            snap.floor = oldest
            self._resized(session_id, snap, before)
        return fitted

    def _resized(self, session_id: str, snap: _Snapshot, before: int) -> None:
        if self._snapshots.get(session_id) is snap:  # not replaced by a concurrent cold read
            self._chars += snap.chars - before
            self._evict(keep=session_id)

    def _put(self, session_id: str, snap: _Snapshot) -> None:
        old = self._snapshots.pop(session_id, None)
        if old is not None:
            self._chars -= old.chars
        if snap.chars > self._max_chars:
            return  # a window larger than the whole budget is not kept
        self._snapshots[session_id] = snap
        self._chars += snap.chars
        self._evict(keep=session_id)

    def _evict(self, keep: str) -> None:
        while self._chars > self._max_chars and len(self._snapshots) > 1:
            sid, snap = next(iter(self._snapshots.items()))
            if sid == keep:
                self._snapshots.move_to_end(sid)
                continue
            del self._snapshots[sid]
            self._chars -= snap.chars

    def forget(self) -> None:
        """Drop every snapshot (the store closed, or its database changed under it)."""
        self._snapshots.clear()
        self._chars = 0


__all__ = ["DEFAULT_MAX_CHARS", "ContextCache"]
