"""Conversation versions (what changed in a session's conversation since a reader last
looked), and the messages index in the conversation's order (turn, run, message).

Revision ID: 0008_context_versions
Revises: 0007_limits
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_context_versions"
down_revision: str | None = "0007_limits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Server defaults: rows written before this migration (and the raw-SQL appends, which name
    # only their own columns) start at version 0, which every reader has already seen.
    op.add_column(
        "asm_event_counters",
        sa.Column("context_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.add_column(
        "asm_runs",
        sa.Column("context_version", sa.BigInteger(), server_default="0", nullable=False),
    )
    op.create_index(
        "ix_asm_runs_session_id_context_version", "asm_runs", ["session_id", "context_version"]
    )
    # Replaces (session_id, turn), its prefix: ordered by turn alone, a window cut inside a
    # turn shared by several runs could drop one that fits and keep none of that turn.
    op.create_index(
        "ix_asm_messages_session_id_turn_run_id_idx",
        "asm_messages",
        ["session_id", "turn", "run_id", "idx"],
    )
    op.drop_index("ix_asm_messages_session_id_turn", table_name="asm_messages")


def downgrade() -> None:
    op.create_index("ix_asm_messages_session_id_turn", "asm_messages", ["session_id", "turn"])
    op.drop_index("ix_asm_messages_session_id_turn_run_id_idx", table_name="asm_messages")
    op.drop_index("ix_asm_runs_session_id_context_version", table_name="asm_runs")
    op.drop_column("asm_runs", "context_version")
    op.drop_column("asm_event_counters", "context_version")
