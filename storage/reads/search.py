"""What staff's ``/find`` searches: a search column on orders (number, buyer's name and e-mail)
and on tickets (reference, holder's name and e-mail), folded by Unicode's rules in Python
(``keys.fold``: "ÉLODIE" is "elodie", "Straße" is "strasse") so that SQLite and PostgreSQL
compare alike, and an index that serves a substring search on it:

- PostgreSQL: a GIN index with ``pg_trgm``'s trigram operator class; ``LIKE '%…%'`` uses it.
  ``pg_trgm`` is a trusted extension (PostgreSQL 13+): any role that may create in the database
  installs it. It goes to the ``public`` schema, and the index names its operator class there.
- SQLite: an FTS5 table with the trigram tokenizer (SQLite 3.34+) over the column, kept in step
  by triggers; ``GLOB '*…*'`` on it uses its index.

Both indexes work on trigrams, so a search needs at least ``MIN_SEARCH_LENGTH`` characters;
``/find`` refuses a shorter one rather than read whole tables.

The columns are filled in Python: on insert by the columns' defaults (the importer's bulk insert
included), on a holder's change by ``services.change_ticket``. Their indexes are DDL of their own
(``SEARCH_DDL``), made by ``create_all`` and by migration 0008 alike, and kept out of Alembic's
comparison of models and migrations, which knows neither virtual tables nor operator classes.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, Select, Table, event, select, text

from storage.keys import fold

MIN_SEARCH_LENGTH = 3  # a trigram
SEARCH_COLUMN_LENGTH = 1000
# Parts are joined by a line break, which a search (whitespace collapsed) never contains: a
# match never spans two parts.
_JOIN = "\n"


def search_key(*parts: str | None) -> str:
    """The search column's value for these parts (number, names, e-mails, reference)."""
    return _JOIN.join(fold(part) for part in parts if part)[:SEARCH_COLUMN_LENGTH]


def order_search_default(context: Any) -> str:
    row = context.get_current_parameters()
    return search_key(row.get("number"), row.get("buyer_name"), row.get("buyer_email"))


def ticket_search_default(context: Any) -> str:
    row = context.get_current_parameters()
    return search_key(row.get("ref"), row.get("holder_name"), row.get("holder_email"))


def search_pattern(text_: str) -> str:
    """The folded text a search looks for; "" if it has nothing to look for."""
    return fold(" ".join(text_.split()))


def matching(table: Table, pattern: str, dialect: str, column: str = "id") -> Select:
    """``column`` of ``table``'s rows whose search column contains ``pattern`` (folded),
    found through the search index."""
    if dialect == "sqlite":
        # GLOB, not LIKE: FTS5's trigram index serves LIKE only without an ESCAPE clause.
        glob = "".join(f"[{ch}]" if ch in "*?[" else ch for ch in pattern)
        found = text(f"SELECT rowid FROM search_{table.name} WHERE search_key GLOB "
                     f":glob_{table.name}").bindparams(**{f"glob_{table.name}": f"*{glob}*"})
        return select(table.c[column]).where(table.c.id.in_(found))
    return select(table.c[column]).where(table.c.search_key.contains(pattern, autoescape=True))


# --- the indexes --------------------------------------------------------------------------------

SEARCHED_TABLES = ("orders", "tickets")


def _sqlite_ddl(table: str) -> list[str]:
    fts = f"search_{table}"
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5(search_key, content='{table}', "
        "content_rowid='id', tokenize='trigram')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        " END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF search_key ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, search_key) VALUES ('delete', old.id, old.search_key);"
        f" INSERT INTO {fts}(rowid, search_key) VALUES (new.id, new.search_key); END",
        # Rows already there (a migrated store).
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def _postgresql_ddl(table: str) -> list[str]:
    return [
        # Concurrent test processes may race to install it; the loser finds it there.
        "DO $$ BEGIN CREATE EXTENSION IF NOT EXISTS pg_trgm SCHEMA public; "
        "EXCEPTION WHEN unique_violation OR duplicate_object THEN NULL; END $$",
        f"CREATE INDEX ix_{table}_search ON {table} USING gin "
        "(search_key public.gin_trgm_ops)",
    ]


SEARCH_DDL = {"sqlite": _sqlite_ddl, "postgresql": _postgresql_ddl}


def search_objects(name: str | None, type_: str) -> bool:
    """Whether a schema object is one of the search indexes above (hidden from Alembic's
    comparison: FTS5's tables and their shadow tables, the GIN indexes)."""
    return type_ in ("table", "index") and bool(name) and (
        name.startswith("search_") or name.endswith("_search"))


def create_search_indexes(connection: Any, table: str) -> None:
    """Make ``table``'s search index on this connection's database."""
    for statement in SEARCH_DDL[connection.dialect.name](table):
        connection.exec_driver_sql(statement)


def attach(table: Table) -> None:
    """Make ``create_all`` create the table's search index with it."""
    for dialect, statements in SEARCH_DDL.items():
        for statement in statements(table.name):
            if "'rebuild'" in statement:
                continue  # a new table is empty
            event.listen(table, "after_create",
                         DDL(statement.replace("%", "%%")).execute_if(dialect=dialect))
