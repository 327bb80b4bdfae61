"""entry policy per event, entry signing keys, stale and offline scans

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OLD_RESULTS = ("ok", "already_scanned", "void", "unknown")
_NEW_RESULTS = (*_OLD_RESULTS, "stale")


def _results(values: tuple[str, ...]) -> str:
    return "result IN (" + ", ".join(f"'{value}'" for value in values) + ")"


def upgrade() -> None:
    op.create_table(
        "entry_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("event_id", sa.String(length=100), nullable=False),
        sa.Column("private_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("public_key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("step_secret", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", storage.models.UtcDateTime(timezone=True), nullable=False),
        sa.Column("retired_at", storage.models.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["events.id"], name=op.f("fk_entry_keys_event_id_events")),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_entry_keys")),
    )
    with op.batch_alter_table("entry_keys", schema=None) as batch_op:
        batch_op.create_index("uq_entry_keys_live", ["event_id"], unique=True,
                              sqlite_where=sa.text("retired_at IS NULL"),
                              postgresql_where=sa.text("retired_at IS NULL"))

    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column(
            "entry_code", sa.Enum("static", "rotating", name="entry_code", native_enum=False, create_constraint=True, length=16),
            nullable=False, server_default="static"))
        batch_op.add_column(sa.Column("entry_period_seconds", sa.Integer(), nullable=False, server_default="15"))
        batch_op.add_column(sa.Column("entry_reveal_hours_before", sa.Integer(), nullable=True))
        batch_op.create_check_constraint("entry_period", "entry_period_seconds BETWEEN 5 AND 300")
        batch_op.create_check_constraint(
            "entry_reveal", "entry_reveal_hours_before IS NULL OR entry_reveal_hours_before BETWEEN 0 AND 720")

    with op.batch_alter_table("gate_scans", schema=None) as batch_op:
        batch_op.add_column(sa.Column("offline", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("conflict", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.drop_constraint(op.f("ck_gate_scans_scan_result"), type_="check")
        batch_op.create_check_constraint("scan_result", _results(_NEW_RESULTS))


def downgrade() -> None:
    op.execute("DELETE FROM gate_scans WHERE result = 'stale'")
    with op.batch_alter_table("gate_scans", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_gate_scans_scan_result"), type_="check")
        batch_op.create_check_constraint("scan_result", _results(_OLD_RESULTS))
        batch_op.drop_column("conflict")
        batch_op.drop_column("offline")
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_events_entry_code"), type_="check")
        batch_op.drop_constraint(op.f("ck_events_entry_reveal"), type_="check")
        batch_op.drop_constraint(op.f("ck_events_entry_period"), type_="check")
        batch_op.drop_column("entry_reveal_hours_before")
        batch_op.drop_column("entry_period_seconds")
        batch_op.drop_column("entry_code")
    with op.batch_alter_table("entry_keys", schema=None) as batch_op:
        batch_op.drop_index("uq_entry_keys_live")
    op.drop_table("entry_keys")
