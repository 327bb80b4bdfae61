"""outbound webhooks: messages, their deliveries per endpoint, stopped endpoints

Revision ID: 0012
Revises: 0013
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0012"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "webhook_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("webhook_id", sa.String(length=40), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"],
                                name=op.f("fk_webhook_messages_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_messages")),
        sa.UniqueConstraint("webhook_id", name=op.f("uq_webhook_messages_webhook_id")),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column(
            "state",
            sa.Enum("pending", "delivered", "failed", "stopped",
                    name="webhook_delivery_state", native_enum=False, create_constraint=True,
                    length=16),
            nullable=False,
        ),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["message_id"], ["webhook_messages.id"],
                                name=op.f("fk_webhook_deliveries_message_id_webhook_messages")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.create_index("ix_webhook_deliveries_due", ["finished_at", "next_attempt_at"])
        batch_op.create_index("ix_webhook_deliveries_message_id", ["message_id"])
        batch_op.create_index("ix_webhook_deliveries_state", ["state", "id"])
        batch_op.create_index(
            "ix_webhook_deliveries_waiting_order", ["endpoint", "order_id", "id"],
            sqlite_where=sa.text("finished_at IS NULL"),
            postgresql_where=sa.text("finished_at IS NULL"),
        )
    op.create_table(
        "stopped_webhook_endpoints",
        sa.Column("endpoint", sa.String(length=2000), nullable=False),
        sa.Column("stopped_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("endpoint", name=op.f("pk_stopped_webhook_endpoints")),
    )


def downgrade() -> None:
    op.drop_table("stopped_webhook_endpoints")
    with op.batch_alter_table("webhook_deliveries", schema=None) as batch_op:
        batch_op.drop_index("ix_webhook_deliveries_waiting_order")
        batch_op.drop_index("ix_webhook_deliveries_state")
        batch_op.drop_index("ix_webhook_deliveries_message_id")
        batch_op.drop_index("ix_webhook_deliveries_due")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_messages")
