"""Token totals as 64-bit integers: a long-lived session's total outgrows PostgreSQL's int4.

Revision ID: 0004_bigint_tokens
Revises: 0003_content
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_bigint_tokens"
down_revision: str | None = "0003_content"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TABLES = ("asm_sessions", "asm_runs")


def upgrade() -> None:
    # SQLite's INTEGER is already 64-bit; batch mode leaves it as it is.
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "total_tokens", type_=sa.BigInteger(), existing_type=sa.Integer(), nullable=False
            )


def downgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(
                "total_tokens", type_=sa.Integer(), existing_type=sa.BigInteger(), nullable=False
            )
