"""Initial schema: events, event counters, sessions, runs, messages.

Revision ID: 0001_initial
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asm_events",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("id", sa.String(512), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("data", _JSON, nullable=False),
        sa.Column("provider", sa.String(255), nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("session_id", "seq", name="pk_asm_events"),
        sa.UniqueConstraint("id", name="uq_asm_events_id"),
    )
    op.create_index("ix_asm_events_run_id_seq", "asm_events", ["run_id", "seq"])

    op.create_table(
        "asm_event_counters",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_asm_event_counters"),
    )

    op.create_table(
        "asm_sessions",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("agent_id", sa.String(255), nullable=False),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("tags", _JSON, nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("usage", _JSON, nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("run_count", sa.Integer(), nullable=False),
        sa.Column("error", _JSON, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_asm_sessions"),
    )
    op.create_index("ix_asm_sessions_created_at", "asm_sessions", ["created_at"])
    op.create_index("ix_asm_sessions_status", "asm_sessions", ["status"])
    op.create_index("ix_asm_sessions_agent_id", "asm_sessions", ["agent_id"])

    op.create_table(
        "asm_runs",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("input_text", sa.Text(), nullable=True),
        sa.Column("input_messages", _JSON, nullable=False),
        sa.Column("output", sa.Text(), nullable=True),
        sa.Column("stop_reason", sa.String(64), nullable=True),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("provider", sa.String(255), nullable=True),
        sa.Column("usage", _JSON, nullable=False),
        sa.Column("total_tokens", sa.Integer(), nullable=False),
        sa.Column("error", _JSON, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("metadata", _JSON, nullable=False),
        sa.Column("rolled_back", sa.Boolean(), nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("ended_at", _TS, nullable=True),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_asm_runs"),
    )
    op.create_index("ix_asm_runs_session_id_turn", "asm_runs", ["session_id", "turn"])

    op.create_table(
        "asm_messages",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("idx", sa.Integer(), nullable=False, autoincrement=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("turn", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("content", _JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "idx", name="pk_asm_messages"),
    )
    op.create_index("ix_asm_messages_session_id_turn", "asm_messages", ["session_id", "turn"])


def downgrade() -> None:
    op.drop_index("ix_asm_messages_session_id_turn", table_name="asm_messages")
    op.drop_table("asm_messages")
    op.drop_index("ix_asm_runs_session_id_turn", table_name="asm_runs")
    op.drop_table("asm_runs")
    op.drop_index("ix_asm_sessions_agent_id", table_name="asm_sessions")
    op.drop_index("ix_asm_sessions_status", table_name="asm_sessions")
    op.drop_index("ix_asm_sessions_created_at", table_name="asm_sessions")
    op.drop_table("asm_sessions")
    op.drop_table("asm_event_counters")
    op.drop_index("ix_asm_events_run_id_seq", table_name="asm_events")
    op.drop_table("asm_events")
