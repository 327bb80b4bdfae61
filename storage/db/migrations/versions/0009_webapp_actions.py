"""webapp actions: the Mini App's replay protection

Revision ID: 0009
Revises: 0002
Create Date: 2026-12-03 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0009"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webapp_actions",
        sa.Column("action_id", sa.String(length=64), nullable=False),
        sa.Column("telegram_id", sa.BigInteger(), nullable=False),
        sa.Column("done_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("action_id", name=op.f("pk_webapp_actions")),
    )
    with op.batch_alter_table("webapp_actions", schema=None) as batch_op:
        batch_op.create_index("ix_webapp_actions_done_at", ["done_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("webapp_actions", schema=None) as batch_op:
        batch_op.drop_index("ix_webapp_actions_done_at")
    op.drop_table("webapp_actions")
