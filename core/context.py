"""The context policy: which earlier messages a run sends its model (a pure decision).

A long session's conversation outgrows any model's context, and reading it whole each turn
makes every turn cost more than the last. :class:`~core.contract.ContextPolicy` bounds both:
the store reads the newest messages first, at most ``max_messages + 1`` of them, and
:func:`fit_context` keeps the newest *whole* runs that fit ``max_messages`` and ``max_chars``. The
oldest turns go first; a run's messages are kept or dropped together (a tool call never loses
its result, a reply never its question); the system prompt travels apart and always stays.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from agent_session_manager.core.contract import ContextPolicy, Message


def message_chars(message: Message) -> int:
    """What a message weighs against ``max_chars`` (content blocks count as their JSON)."""
    content = message.content
    return len(content) if isinstance(content, str) else len(json.dumps(content))


def fit_runs(
    runs_newest_first: Sequence[Sequence[Message]], policy: ContextPolicy, *, complete: bool
) -> int:
    """How many of the newest runs :func:`fit_context` keeps."""
    count = size = kept = 0
    last = len(runs_newest_first) - 1
    for i, run in enumerate(runs_newest_first):
        if i == last and not complete:
            break
        weight = sum(message_chars(m) for m in run)
        if count + len(run) > policy.max_messages or size + weight > policy.max_chars:
            break
        kept += 1
        count += len(run)
        size += weight
    return kept


def fit_context(
    runs_newest_first: Sequence[Sequence[Message]], policy: ContextPolicy, *, complete: bool
) -> list[Message]:
    """The conversation to send, oldest first: the newest whole runs within ``policy``.

    ``runs_newest_first`` holds each earlier run's messages (in order), newest run first.
    ``complete=False`` says the reader stopped at its row limit, so the oldest run given may
    be cut: it is never kept (it could not fit anyway, see the store's windowed read).
    """
    kept = runs_newest_first[: fit_runs(runs_newest_first, policy, complete=complete)]
    return [m for run in reversed(kept) for m in run]


def summary_room(policy: ContextPolicy) -> ContextPolicy:
    """The window a new summary leaves behind it: half the policy's.

    Summarizing only what the full window dropped would cost a summary call every turn once a
    session outgrew it; leaving half the window empty lets the next turns' runs fit behind
    the same summary, so a summary is written about once per half a window of turns.
    """
    return policy.model_copy(
        update={"max_messages": policy.max_messages // 2, "max_chars": policy.max_chars // 2}
    )


__all__ = ["fit_context", "fit_runs", "message_chars", "summary_room"]
