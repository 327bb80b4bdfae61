"""broadcast budget: the pace of notifications, shared by every process

Revision ID: 0005
Revises: 0003
Create Date: 2026-12-03 15:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "broadcast_budget",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("next_slot", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_broadcast_budget")),
    )


def downgrade() -> None:
    op.drop_table("broadcast_budget")
