"""What every table of the store is built on: the declarative base with its naming convention
(every constraint has a name), and the column types the tables share (aware UTC times, money,
words by language, enums stored as checked strings).
"""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import JSON, DateTime, Enum, MetaData, Numeric, literal_column
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.sql.elements import ColumnClause
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


# Prices are decimals with two places in the event's currency, read back as Decimal.
Money = Numeric(12, 2, asdecimal=True)

# Words shown to people (an event's name, its venue's, a ticket's category) as the import gave
# them: one plain string, or texts by language ({"fr": "…", "en": "…"}); the reader picks the
# viewer's (``locales.Translator.words``). JSONB on PostgreSQL, which compares values (json
# does not), so such columns may still appear in DISTINCT, GROUP BY or ``=``.
Words = JSON().with_variant(JSONB(), "postgresql")
# What a Words column holds once read.
WordsValue = str | dict[str, str]


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def enum_column(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as plain strings with a CHECK constraint: portable, and readable in psql.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


def sql_constant(member: enum.Enum) -> ColumnClause[Any]:
    """An enum's value written into the statement's SQL instead of bound as a parameter: for a
    state that a partial index's predicate names (``state = 'listed'``). Compared with a bound
    parameter there, SQLite plans the statement again on every run to learn whether the index
    applies (the order's read took 100 µs instead of 21, most of a reply's SQL time), and
    PostgreSQL's generic plan of a prepared statement cannot use the index at all."""
    value = str(member.value)
    assert "'" not in value, value  # the values are the code's own words, never input
    return literal_column(f"'{value}'")
