"""Fleet-wide limits: slot leases (runs and sessions) and per-credential rate state.

Revision ID: 0007_limits
Revises: 0006_gateway_keys
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0007_limits"
down_revision: str | None = "0006_gateway_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Frozen copies of the column types: a migration must not change when the models do.
_JSON = sa.JSON().with_variant(JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "asm_slot_leases",
        sa.Column("lease_id", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(64), nullable=False),
        sa.Column("scopes", _JSON, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("enqueued_at", sa.Double(), nullable=False),
        sa.Column("acquired_at", sa.Double(), nullable=True),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.PrimaryKeyConstraint("lease_id", name="pk_asm_slot_leases"),
    )
    op.create_index("ix_asm_slot_leases_kind_state", "asm_slot_leases", ["kind", "state"])
    op.create_table(
        "asm_rate_state",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("cooldown_until", sa.Double(), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
        sa.Column("tokens", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_asm_rate_state"),
    )


def downgrade() -> None:
    op.drop_table("asm_rate_state")
    op.drop_index("ix_asm_slot_leases_kind_state", table_name="asm_slot_leases")
    op.drop_table("asm_slot_leases")
