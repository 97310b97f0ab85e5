"""The cost ledger: one row per provider attempt (of each agent-loop model call), with its
tokens, cost and price version.

Revision ID: 0005_cost_ledger
Revises: 0004_bigint_tokens
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_cost_ledger"
down_revision: str | None = "0004_bigint_tokens"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the column type: a migration must not change when the models do.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asm_ledger",
        sa.Column("run_id", sa.String(255), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("agent_id", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(255), nullable=True),
        sa.Column("provider", sa.String(255), nullable=False),
        sa.Column("model", sa.String(255), nullable=True),
        sa.Column("credential", sa.String(64), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=False),
        sa.Column("output_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_write_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cache_read_tokens", sa.BigInteger(), nullable=False),
        sa.Column("thinking_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=False),
        sa.Column("cost_micros", sa.BigInteger(), nullable=True),
        sa.Column("price_version", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_code", sa.String(64), nullable=True),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("run_id", "step", "attempt", name="pk_asm_ledger"),
    )
    op.create_index("ix_asm_ledger_session_id", "asm_ledger", ["session_id"])
    op.create_index("ix_asm_ledger_agent_id_day", "asm_ledger", ["agent_id", "day"])
    op.create_index("ix_asm_ledger_tenant_day", "asm_ledger", ["tenant", "day"])
    op.create_index("ix_asm_ledger_day", "asm_ledger", ["day"])


def downgrade() -> None:
    op.drop_table("asm_ledger")
