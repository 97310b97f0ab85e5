"""Summaries of a conversation's older turns (the ``summarize`` context policy).

Revision ID: 0009_summaries
Revises: 0008_context_versions
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_summaries"
down_revision: str | None = "0008_context_versions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "asm_summaries",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("through_turn", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("session_id", "through_turn", name="pk_asm_summaries"),
    )


def downgrade() -> None:
    op.drop_table("asm_summaries")
