"""SQL event store and read models (SQLite by default, PostgreSQL for production).

Events are the audit trail and the streaming interface: append-only, gap-free ``seq`` per
session, idempotent by event id, readable by cursor and followable live::

    await upgrade(url)                    # `asm db upgrade`: alembic migrations to head
    store = await open_store(url)         # refuses an out-of-date schema (SchemaOutOfDate)
    written = await store.append(drafts)  # seqs assigned; existing ids skipped
    async for event in store.follow(session_id, after_seq=cursor): ...
    await store.close()

``url`` defaults to ``$ASM_DATABASE_URL``, then :data:`DEFAULT_DATABASE_URL`.
"""

from agent_session_manager.store._conversation import SavedRun
from agent_session_manager.store._engine import DEFAULT_DATABASE_URL
from agent_session_manager.store._errors import SchemaOutOfDate
from agent_session_manager.store._hub import Subscription as Watch
from agent_session_manager.store._limits import (
    LeaseInfo,
    RateInfo,
    SlotRequest,
    SlotState,
    session_lease_id,
)
from agent_session_manager.store._migrate import upgrade
from agent_session_manager.store._rows import RunRow, SessionRow
from agent_session_manager.store._store import EventStore, SavedReply, open_store
from agent_session_manager.store._summaries import Summary
from agent_session_manager.store._tenancy import ApiKey

__all__ = [
    "DEFAULT_DATABASE_URL",
    "ApiKey",
    "EventStore",
    "LeaseInfo",
    "RateInfo",
    "RunRow",
    "SavedReply",
    "SavedRun",
    "SchemaOutOfDate",
    "SessionRow",
    "SlotRequest",
    "SlotState",
    "Summary",
    "Watch",
    "open_store",
    "session_lease_id",
    "upgrade",
]
