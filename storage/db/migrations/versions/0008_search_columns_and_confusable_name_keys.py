"""search columns for /find, and name keys that fold look-alike letters

Revision ID: 0008
Revises: 0004
Create Date: 2026-12-03 15:10:00

- ``orders.search_key`` and ``tickets.search_key``: what staff's ``/find`` looks in, folded by
  Unicode's rules, with a trigram index (PostgreSQL: ``pg_trgm`` GIN; SQLite: an FTS5 table kept
  by triggers); see ``storage/reads/search.py``.
- ``tickets.name_key`` now also folds look-alike letters of other alphabets (UTS #39 skeleton,
  ``storage/skeleton.py``). Existing keys are recomputed. Two tickets of an event whose names
  only the new rule makes one ("Alex" and "Аlex") cannot both get the new key: the later ticket
  keeps its old key (still unique), and the pair is printed for staff to look at.
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from storage.keys import fold, name_key
from storage.reads.search import SEARCHED_TABLES, create_search_indexes, search_key

revision: str = "0008"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CHUNK = 5000
log = logging.getLogger("alembic.runtime.migration")


def upgrade() -> None:
    for table in SEARCHED_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.add_column(sa.Column("search_key", sa.String(length=1000), nullable=True))
    connection = op.get_bind()
    _fill(connection, "SELECT id, number, buyer_name, buyer_email FROM orders",
          "UPDATE orders SET search_key = :key WHERE id = :id",
          lambda row: {"id": row[0], "key": search_key(row[1], row[2], row[3])})
    _fill(connection, "SELECT id, ref, holder_name, holder_email FROM tickets",
          "UPDATE tickets SET search_key = :key WHERE id = :id",
          lambda row: {"id": row[0], "key": search_key(row[1], row[2], row[3])})
    _recompute_name_keys(connection, name_key)
    for table in SEARCHED_TABLES:
        with op.batch_alter_table(table) as batch_op:
            batch_op.alter_column("search_key", existing_type=sa.String(length=1000),
                                  nullable=False)
        create_search_indexes(connection, table)


def downgrade() -> None:
    connection = op.get_bind()
    for table in SEARCHED_TABLES:
        if connection.dialect.name == "sqlite":
            for trigger in ("insert", "delete", "update"):
                op.execute(f"DROP TRIGGER IF EXISTS search_{table}_{trigger}")
            op.execute(f"DROP TABLE IF EXISTS search_{table}")
        else:
            op.execute(f"DROP INDEX IF EXISTS ix_{table}_search")
        with op.batch_alter_table(table) as batch_op:
            batch_op.drop_column("search_key")
    _recompute_name_keys(connection, fold)


def _fill(connection, query: str, update: str, values) -> None:
    rows = connection.execute(sa.text(query)).all()
    for start in range(0, len(rows), CHUNK):
        connection.execute(sa.text(update), [values(row) for row in rows[start:start + CHUNK]])


def _recompute_name_keys(connection, key_of) -> None:
    rows = connection.execute(sa.text(
        "SELECT id, event_id, holder_name, name_key FROM tickets "
        "WHERE name_key IS NOT NULL ORDER BY id")).all()
    taken = {(event_id, old) for _id, event_id, _name, old in rows}
    changes = []
    for ticket_id, event_id, name, old in rows:
        new = key_of(name)
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
