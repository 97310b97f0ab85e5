"""Content stored by reference: prompts, system prompts and replies, content-addressed.

Revision ID: 0003_content
Revises: 0002_ownership
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_content"
down_revision: str | None = "0002_ownership"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A frozen copy of the column type: a migration must not change when the models do.
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "asm_content",
        sa.Column("digest", sa.String(71), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("media_type", sa.String(255), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("digest", name="pk_asm_content"),
    )


def downgrade() -> None:
    op.drop_table("asm_content")
