"""Session and run ids: a fixed prefix and a plain suffix the caller supplies.

Nothing here reads a random source: the caller passes ``workflow.uuid4()`` (in a workflow),
``uuid.uuid4()`` (in a client) or a suffix it chose, so replays agree. Ids land in workflow
ids (``session-<id>``), SQL keys and URLs, so a suffix is letters, digits, ``_`` and ``-``
(``invalid_format`` otherwise).
"""

from __future__ import annotations

import re
from uuid import UUID

from agent_session_manager.core.errors import ValidationError

#: Prefix of every session id.
SESSION_ID_PREFIX = "ses_"

#: Prefix of every run id.
RUN_ID_PREFIX = "run_"

_SUFFIX = re.compile(r"[A-Za-z0-9_-]+")


def _make_id(prefix: str, source: UUID | str) -> str:
    suffix = source.hex if isinstance(source, UUID) else source
    if not _SUFFIX.fullmatch(suffix):
        raise ValidationError(
            "invalid_format",
            f"id suffix must be letters, digits, '_' or '-', got {suffix!r}",
            details={"prefix": prefix, "suffix": suffix},
        )
    return prefix + suffix


def new_session_id(source: UUID | str) -> str:
    """``ses_`` plus the hex of ``source`` (a UUID) or ``source`` itself (a suffix)."""
    return _make_id(SESSION_ID_PREFIX, source)


def new_run_id(source: UUID | str) -> str:
    """``run_`` plus the hex of ``source`` (a UUID) or ``source`` itself (a suffix)."""
    return _make_id(RUN_ID_PREFIX, source)
