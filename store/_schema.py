"""The SQL schema: sessions, runs, events, per-session sequence counters, conversation messages,
who owns each session and run id, content stored by reference, and the cost ledger.

Tables are defined with sqlmodel on a private registry (so ``SQLModel.metadata`` of other code
never mixes in), and prefixed ``asm_`` so the store can share a database — Temporal's own
PostgreSQL for instance — without colliding. Hot paths use the SQLAlchemy Core tables
(``EVENTS`` …), never the ORM.

Changing anything here needs a migration in ``store/migrations/versions``:
``tests/store/test_schema.py`` fails when the migrated schema and these models disagree.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

#: JSON everywhere, JSONB on PostgreSQL (queryable, compact; parsing cost is the same per row).
JsonType = sa.JSON().with_variant(JSONB(), "postgresql")


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones (SQLAlchemy would silently drop
    the offset), so values are converted to naive UTC on the way in and marked UTC on the way
    out.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        if dialect.name == "sqlite":
            return value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Timestamp = UtcDateTime()

#: The alembic version table: not ``alembic_version``, which another application sharing the
#: database may own.
VERSION_TABLE = "asm_alembic_version"


#: Constraint names as the migrations spell them (``pk_asm_events`` …), so autogenerate and the
#: migrated schema agree on every backend.
_NAMING = {
    "pk": "pk_%(table_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
}


class _AsmModel(SQLModel, registry=registry(metadata=sa.MetaData(naming_convention=_NAMING))):
    """Base of the store's tables; its ``metadata`` holds exactly the store's schema."""


class EventRow(_AsmModel, table=True):
    """The append-only event log. Primary key ``(session_id, seq)``; ``id`` unique."""

    __tablename__ = "asm_events"
    __table_args__ = (
        sa.UniqueConstraint("id", name="uq_asm_events_id"),
        # "events of one run" (client stream_text, `asm events --run`) without a session scan.
        sa.Index("ix_asm_events_run_id_seq", "run_id", "seq"),
    )

    session_id: str = Field(primary_key=True, max_length=255)
    seq: int = Field(sa_column_kwargs={"primary_key": True, "autoincrement": False})
    id: str = Field(max_length=512)
    run_id: str | None = Field(default=None, max_length=255)
    attempt: int = Field(default=0)
    type: str = Field(max_length=64)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    provider: str | None = Field(default=None, max_length=255)
    created_at: datetime = Field(sa_type=Timestamp)


class EventCounterRow(_AsmModel, table=True):
    """Per-session sequence allocator: ``last_seq`` is the highest committed ``seq``.

    Created lazily by the first append of a session (an event may precede its session row).
    Writers of one session serialize on this row's lock, so ``seq`` is gap-free.
    """

    __tablename__ = "asm_event_counters"

    session_id: str = Field(primary_key=True, max_length=255)
    last_seq: int = Field(default=0)
    #: Bumped by every change to which messages the session's conversation holds (a run's
    #: messages saved, a run rolled back or ended failed/cancelled/timeout); the changed run
    #: row is stamped with the new value. Readers that keep the conversation between turns
    #: (``store._context_cache``) read only the runs stamped after the version they hold.
    context_version: int = Field(
        default=0,
        # The server's default only: a write that does not name it (an older writer, the
        # raw-SQL appends) still works.
        sa_column=sa.Column("context_version", sa.BigInteger, server_default="0", nullable=False),
    )


class SessionTable(_AsmModel, table=True):
    """Session read model for ``asm session ls/show``, written by the lifecycle activities."""

    __tablename__ = "asm_sessions"
    __table_args__ = (
        sa.Index("ix_asm_sessions_created_at", "created_at"),
        sa.Index("ix_asm_sessions_status", "status"),
        sa.Index("ix_asm_sessions_agent_id", "agent_id"),
    )

    session_id: str = Field(primary_key=True, max_length=255)
    agent_id: str = Field(default="", max_length=255)
    provider: str = Field(default="", max_length=255)
    model: str | None = Field(default=None, max_length=255)
    status: str = Field(default="pending", max_length=32)
    tags: list[str] = Field(default_factory=list, sa_type=JsonType)
    # ``metadata`` is reserved on declarative classes: the attribute is ``meta``.
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column("metadata", JsonType, nullable=False)
    )
    usage: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    total_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    run_count: int = Field(default=0)
    error: dict[str, Any] | None = Field(default=None, sa_type=JsonType)
    created_at: datetime = Field(sa_type=Timestamp)
    updated_at: datetime = Field(sa_type=Timestamp)


class RunTable(_AsmModel, table=True):
    """Run read model: status, input, output, usage; ``rolled_back`` hides its messages."""

    __tablename__ = "asm_runs"
    __table_args__ = (
        sa.Index("ix_asm_runs_session_id_turn", "session_id", "turn"),
        # "runs of this session changed since version v": the conversation cache's delta read.
        sa.Index("ix_asm_runs_session_id_context_version", "session_id", "context_version"),
    )

    run_id: str = Field(primary_key=True, max_length=255)
    session_id: str = Field(max_length=255)
    turn: int = Field(default=0)
    status: str = Field(default="pending", max_length=32)
    input_text: str | None = Field(default=None, sa_type=sa.Text)
    input_messages: list[dict[str, Any]] = Field(default_factory=list, sa_type=JsonType)
    output: str | None = Field(default=None, sa_type=sa.Text)
    stop_reason: str | None = Field(default=None, max_length=64)
    model: str | None = Field(default=None, max_length=255)
    provider: str | None = Field(default=None, max_length=255)
    usage: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    total_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    error: dict[str, Any] | None = Field(default=None, sa_type=JsonType)
    attempts: int = Field(default=0)
    meta: dict[str, Any] = Field(
        default_factory=dict, sa_column=sa.Column("metadata", JsonType, nullable=False)
    )
    rolled_back: bool = Field(default=False)
    #: The session's ``context_version`` when this run's part of the conversation last changed.
    context_version: int = Field(
        default=0,
        # The server's default only: a write that does not name it (an older writer, the
        # raw-SQL appends) still works.
        sa_column=sa.Column("context_version", sa.BigInteger, server_default="0", nullable=False),
    )
    started_at: datetime | None = Field(default=None, sa_type=Timestamp)
    ended_at: datetime | None = Field(default=None, sa_type=Timestamp)
    created_at: datetime = Field(sa_type=Timestamp)
    updated_at: datetime = Field(sa_type=Timestamp)


class MessageRow(_AsmModel, table=True):
    """Conversation messages of a run, in order; replaced as a whole by ``save_messages`` (or
    ``save_reply``)."""

    __tablename__ = "asm_messages"
    __table_args__ = (
        # The windowed read walks it backwards in the conversation's own order (turn, run,
        # message) and stops at the window's edge: only the last run read can be cut short.
        sa.Index(
            "ix_asm_messages_session_id_turn_run_id_idx", "session_id", "turn", "run_id", "idx"
        ),
    )

    run_id: str = Field(primary_key=True, max_length=255)
    idx: int = Field(sa_column_kwargs={"primary_key": True, "autoincrement": False})
    session_id: str = Field(max_length=255)
    turn: int
    role: str = Field(max_length=16)
    content: Any = Field(sa_type=JsonType)
    created_at: datetime = Field(sa_type=Timestamp)


class ContentRow(_AsmModel, table=True):
    """Content stored by reference (prompts, system prompts, replies), keyed by its digest.

    Content-addressed, so writing the same content twice is one row, and a row never changes:
    a reference in a workflow history stays valid as long as the row lives.
    """

    __tablename__ = "asm_content"

    digest: str = Field(primary_key=True, max_length=71)
    size: int = Field(sa_type=sa.BigInteger)
    media_type: str = Field(max_length=255)
    # Bytes, not text: PostgreSQL text cannot hold NUL, and the digest is of the bytes.
    body: bytes = Field(sa_type=sa.LargeBinary)
    created_at: datetime = Field(sa_type=Timestamp)


class SessionOwnerRow(_AsmModel, table=True):
    """Which session workflow a session id belongs to: claimed once, before anything is written.

    ``owner`` is the workflow's first execution run id (the same across continue-as-new, new
    for every fresh start); ``legacy`` for sessions that existed before ownership was kept.
    """

    __tablename__ = "asm_session_owners"

    session_id: str = Field(primary_key=True, max_length=255)
    owner: str = Field(max_length=64)
    workflow_id: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(sa_type=Timestamp)


class RunOwnerRow(_AsmModel, table=True):
    """Which session a run id belongs to: claimed once, before the run is placed."""

    __tablename__ = "asm_run_owners"

    run_id: str = Field(primary_key=True, max_length=255)
    session_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_type=Timestamp)


class LedgerRow(_AsmModel, table=True):
    """The cost ledger: one row per provider attempt (``core.ledger``), written as it ends.

    Keyed by ``(run_id, step, attempt)`` (an agent loop calls its model once per step, each
    call with its own attempts) so a retried write is a no-op. ``day`` (UTC, ``YYYY-MM-DD``)
    is a column, not an expression over ``created_at``, so "per agent per day" is an index
    range on both backends.
    """

    __tablename__ = "asm_ledger"
    __table_args__ = (
        sa.Index("ix_asm_ledger_session_id", "session_id"),
        sa.Index("ix_asm_ledger_agent_id_day", "agent_id", "day"),
        sa.Index("ix_asm_ledger_tenant_day", "tenant", "day"),
        sa.Index("ix_asm_ledger_day", "day"),
    )

    run_id: str = Field(primary_key=True, max_length=255)
    step: int = Field(sa_column_kwargs={"primary_key": True, "autoincrement": False})
    attempt: int = Field(sa_column_kwargs={"primary_key": True, "autoincrement": False})
    session_id: str = Field(max_length=255)
    agent_id: str = Field(max_length=255)
    tenant: str | None = Field(default=None, max_length=255)
    provider: str = Field(max_length=255)
    model: str | None = Field(default=None, max_length=255)
    credential: str | None = Field(default=None, max_length=64)
    input_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    output_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_write_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cache_read_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    thinking_tokens: int | None = Field(default=None, sa_type=sa.BigInteger)
    total_tokens: int = Field(default=0, sa_type=sa.BigInteger)
    cost_micros: int | None = Field(default=None, sa_type=sa.BigInteger)
    price_version: str | None = Field(default=None, max_length=64)
    outcome: str = Field(max_length=16)
    error_code: str | None = Field(default=None, max_length=64)
    day: str = Field(max_length=10)
    created_at: datetime = Field(sa_type=Timestamp)


class ApiKeyRow(_AsmModel, table=True):
    """An HTTP gateway API key: only its SHA-256 is kept (``store._tenancy`` says why that is
    enough), bound to one tenant; revoked keys stay, so ``asm keys ls`` shows when."""

    __tablename__ = "asm_api_keys"
    __table_args__ = (
        sa.UniqueConstraint("key_hash", name="uq_asm_api_keys_key_hash"),
        sa.Index("ix_asm_api_keys_tenant", "tenant"),
    )

    key_id: str = Field(primary_key=True, max_length=32)
    key_hash: str = Field(max_length=64)
    tenant: str = Field(max_length=128)
    name: str = Field(default="", max_length=255)
    created_at: datetime = Field(sa_type=Timestamp)
    revoked_at: datetime | None = Field(default=None, sa_type=Timestamp)


class SessionTenantRow(_AsmModel, table=True):
    """Which tenant a session belongs to: recorded by the gateway before it starts the session,
    so a key of another tenant is refused from the first request on."""

    __tablename__ = "asm_session_tenants"
    __table_args__ = (sa.Index("ix_asm_session_tenants_tenant", "tenant", "created_at"),)

    session_id: str = Field(primary_key=True, max_length=255)
    tenant: str = Field(max_length=128)
    created_at: datetime = Field(sa_type=Timestamp)


class SummaryRow(_AsmModel, table=True):
    """Summaries of a conversation's older turns (the ``summarize`` context policy).

    ``text`` summarizes every run of the session with a turn below ``through_turn`` (a run
    that counted when it was written); written once per ``(session_id, through_turn)``, never
    changed, so a retried attempt or a later turn finds it instead of paying for another.
    """

    __tablename__ = "asm_summaries"

    session_id: str = Field(primary_key=True, max_length=255)
    through_turn: int = Field(sa_column_kwargs={"primary_key": True, "autoincrement": False})
    text: str = Field(sa_type=sa.Text)
    run_id: str = Field(max_length=255)
    created_at: datetime = Field(sa_type=Timestamp)


METADATA: sa.MetaData = _AsmModel.metadata
EVENTS: sa.Table = EventRow.__table__  # type: ignore[attr-defined]
COUNTERS: sa.Table = EventCounterRow.__table__  # type: ignore[attr-defined]
SESSIONS: sa.Table = SessionTable.__table__  # type: ignore[attr-defined]
RUNS: sa.Table = RunTable.__table__  # type: ignore[attr-defined]
MESSAGES: sa.Table = MessageRow.__table__  # type: ignore[attr-defined]
CONTENT: sa.Table = ContentRow.__table__  # type: ignore[attr-defined]
SESSION_OWNERS: sa.Table = SessionOwnerRow.__table__  # type: ignore[attr-defined]
RUN_OWNERS: sa.Table = RunOwnerRow.__table__  # type: ignore[attr-defined]
LEDGER: sa.Table = LedgerRow.__table__  # type: ignore[attr-defined]
API_KEYS: sa.Table = ApiKeyRow.__table__  # type: ignore[attr-defined]
SESSION_TENANTS: sa.Table = SessionTenantRow.__table__  # type: ignore[attr-defined]
SUMMARIES: sa.Table = SummaryRow.__table__  # type: ignore[attr-defined]


class SlotLeaseRow(_AsmModel, table=True):
    """Fleet-wide slots (``core.limits``): a held lease or a waiter, one row per run or session.

    A run's lease expires (``expires_at``, epoch seconds of the holder's clock) unless its
    holder renews it: a worker killed mid-call frees its slots within the heartbeat timeout.
    A session's lease has no expiry: the session workflow is durable, and its terminal record
    deletes it.
    """

    __tablename__ = "asm_slot_leases"
    __table_args__ = (sa.Index("ix_asm_slot_leases_kind_state", "kind", "state"),)

    lease_id: str = Field(primary_key=True, max_length=255)
    kind: str = Field(max_length=16)
    holder: str = Field(max_length=255)
    session_id: str = Field(default="", max_length=255)
    tenant: str = Field(default="", max_length=64)
    scopes: dict[str, Any] = Field(default_factory=dict, sa_type=JsonType)
    state: str = Field(max_length=16)
    enqueued_at: float = Field(sa_type=sa.Double)
    acquired_at: float | None = Field(default=None, sa_type=sa.Double)
    expires_at: float | None = Field(default=None, sa_type=sa.Double)


class RateStateRow(_AsmModel, table=True):
    """Per credential (and model): a rate-limit cooldown and a request-per-minute bucket.

    ``cooldown_until`` is set when a provider answered 429/529; every worker waits it out
    before its next call with that credential and model.
    """

    __tablename__ = "asm_rate_state"

    key: str = Field(primary_key=True, max_length=512)
    cooldown_until: float = Field(default=0.0, sa_type=sa.Double)
    reason: str = Field(default="", max_length=255)
    tokens: float = Field(default=0.0, sa_type=sa.Double)
    updated_at: float = Field(default=0.0, sa_type=sa.Double)


SLOT_LEASES: sa.Table = SlotLeaseRow.__table__  # type: ignore[attr-defined]
RATE_STATE: sa.Table = RateStateRow.__table__  # type: ignore[attr-defined]
