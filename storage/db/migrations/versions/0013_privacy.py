"""privacy: retention per event, erased history entries, name keys that catch look-alike capitals

Revision ID: 0013
Revises: 0011
Create Date: 2026-12-07 10:00:00

- ``events.retention_days`` (default 30) and ``events.shredded_at``: that long after the
  event, its orders' and tickets' personal data are removed, once (storage/services/privacy.py).
- ``audit_entries.erased_at``: set when the person an entry was about was forgotten and its
  texts blanked.
- ``tickets.name_key`` now folds case before and after the look-alike letters
  (``storage.keys.name_key``), so "Мartin" with a Cyrillic М and "Ꭺlex" with a Cherokee Ꭺ are
  "Martin" and "Alex". Existing keys are recomputed as 0008 did: two tickets of an event whose
  names only the new rule makes one cannot both get the new key; the later ticket keeps its old
  key (still unique), and the pair is logged for staff to look at.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import storage.models
from storage.keys import name_key

revision: str = "0013"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    with op.batch_alter_table("events") as batch_op:
        batch_op.add_column(sa.Column("retention_days", sa.Integer(), nullable=False,
                                      server_default="30"))
        batch_op.add_column(sa.Column("shredded_at", storage.models.UtcDateTime(timezone=True),
                                      nullable=True))
        batch_op.create_check_constraint("retention_days", "retention_days >= 0")
    with op.batch_alter_table("audit_entries") as batch_op:
        batch_op.add_column(sa.Column("erased_at", storage.models.UtcDateTime(timezone=True),
                                      nullable=True))
    _recompute_name_keys(op.get_bind())


def downgrade() -> None:
    # The name keys made by the new rule stay: they are as unique as the old ones, and the old
    # rule's keys are not worth a copy of the old code here.
    with op.batch_alter_table("audit_entries") as batch_op:
        batch_op.drop_column("erased_at")
    with op.batch_alter_table("events") as batch_op:
        batch_op.drop_constraint("ck_events_retention_days", type_="check")
        batch_op.drop_column("shredded_at")
        batch_op.drop_column("retention_days")


def _recompute_name_keys(connection) -> None:
    rows = connection.execute(sa.text(
        "SELECT id, event_id, holder_name, name_key FROM tickets "
        "WHERE name_key IS NOT NULL ORDER BY id")).all()
    taken = {(event_id, old) for _id, event_id, _name, old in rows}
    changes = []
    for ticket_id, event_id, name, old in rows:
        new = name_key(name)
        if new == old:
            continue
        if (event_id, new) in taken:
            log.warning("ticket %s of event %s: its holder's name looks like another ticket's;"
                        " it keeps its old name key", ticket_id, event_id)
            continue
        taken.discard((event_id, old))
        taken.add((event_id, new))
        changes.append({"id": ticket_id, "key": new})
    for start in range(0, len(changes), CHUNK):
        connection.execute(sa.text("UPDATE tickets SET name_key = :key WHERE id = :id"),
                           changes[start:start + CHUNK])
