"""words by language: event names, venue names and ticket categories as JSON

An event's name, its venue's name and a ticket's category may now be given per language
(``{"fr": "…", "en": "…"}``) or as one plain string, and are kept as the import gave them, in a
JSON column (JSONB on PostgreSQL). Existing rows hold plain strings: each becomes the JSON
string of the same text, so every old row reads back exactly as before.

Revision ID: 0007
Revises: 0005
Create Date: 2026-12-03 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The gate's feed (0004) copies each ticket's category: it holds the same words.
COLUMNS = (("events", "name"), ("events", "venue_name"), ("tickets", "category"),
           ("barcode_feed", "category"))
WORDS = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(table, column, type_=postgresql.JSONB(),
                            existing_type=sa.String(length=200), existing_nullable=False,
                            postgresql_using=f"to_jsonb({column})")
        return
    # SQLite: quote the text as a JSON string in place; the batch copy then keeps it as it is
    # (Alembic casts nothing into a JSON column).
    for table, column in COLUMNS:
        op.execute(f"UPDATE {table} SET {column} = json_quote({column})")
    for table in ("events", "tickets", "barcode_feed"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column in (c for c in COLUMNS if c[0] == table):
                batch_op.alter_column(column, type_=WORDS, existing_type=sa.String(length=200),
                                      existing_nullable=False)


def downgrade() -> None:
    # Words given per language keep one text: the English one, else the French, else any.
    if op.get_bind().dialect.name == "postgresql":
        for table, column in COLUMNS:
            op.alter_column(
                table, column, type_=sa.String(length=200), existing_type=postgresql.JSONB(),
                existing_nullable=False,
                postgresql_using=(
                    f"CASE jsonb_typeof({column}) WHEN 'string' THEN {column} #>> '{{}}' "
                    f"ELSE left(coalesce({column} ->> 'en', {column} ->> 'fr', "
                    f"jsonb_path_query_first({column}, '$.*') #>> '{{}}'), 200) END"
                ),
            )
        return
    for table in ("events", "tickets", "barcode_feed"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _, column in (c for c in COLUMNS if c[0] == table):
                batch_op.alter_column(column, type_=sa.String(length=200), existing_type=WORDS,
                                      existing_nullable=False)
    for table, column in COLUMNS:
        op.execute(
            f"UPDATE {table} SET {column} = CASE json_type({column}) "
            f"WHEN 'text' THEN json_extract({column}, '$') "
            f"ELSE substr(coalesce(json_extract({column}, '$.en'), json_extract({column}, '$.fr'), "
            f"(SELECT value FROM json_each({column}) LIMIT 1)), 1, 200) END"
        )
