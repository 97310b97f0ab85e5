"""HTTP gateway: API keys (hashed) bound to tenants, and the tenant of each session.

Revision ID: 0006_gateway_keys
Revises: 0005_cost_ledger
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_gateway_keys"
down_revision: str | None = "0005_cost_ledger"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the column type: a migration must not change when the models do.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asm_api_keys",
        sa.Column("key_id", sa.String(32), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("revoked_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("key_id", name="pk_asm_api_keys"),
        sa.UniqueConstraint("key_hash", name="uq_asm_api_keys_key_hash"),
    )
    op.create_index("ix_asm_api_keys_tenant", "asm_api_keys", ["tenant"])
    op.create_table(
        "asm_session_tenants",
        sa.Column("session_id", sa.String(255), nullable=False),
        sa.Column("tenant", sa.String(128), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_asm_session_tenants"),
    )
    op.create_index(
        "ix_asm_session_tenants_tenant", "asm_session_tenants", ["tenant", "created_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_asm_session_tenants_tenant", table_name="asm_session_tenants")
    op.drop_table("asm_session_tenants")
    op.drop_index("ix_asm_api_keys_tenant", table_name="asm_api_keys")
    op.drop_table("asm_api_keys")
