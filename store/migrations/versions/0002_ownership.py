"""Ownership of ids: which session workflow a session id belongs to, which session a run id.

Existing sessions and runs are claimed as they stand (sessions by ``legacy``), so a new
session or run can never take over an id that is already in the log.

Revision ID: 0002_ownership
Revises: 0001_initial
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_ownership"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asm_session_owners",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("workflow_id", sa.Text(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_asm_session_owners"),
    )
    op.create_table(
        "asm_run_owners",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_asm_run_owners"),
    )
    op.execute(
        "INSERT INTO asm_session_owners (session_id, owner, workflow_id, created_at) "
        "SELECT session_id, 'legacy', '', created_at FROM asm_sessions"
    )
    op.execute(
        "INSERT INTO asm_run_owners (run_id, session_id, created_at) "
        "SELECT run_id, session_id, created_at FROM asm_runs"
    )


def downgrade() -> None:
    op.drop_table("asm_run_owners")
    op.drop_table("asm_session_owners")
