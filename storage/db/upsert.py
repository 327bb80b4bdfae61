"""Insert-or-update that the database settles, on SQLite and PostgreSQL alike.

The statements are Core statements built once per shape and run on the session's connection:
they are on every hot path (a chat's step, a user's language), where building an expression
and going through the ORM cost more than the statement itself.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import execute_in_session


def _dialect(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


@functools.lru_cache(maxsize=64)
def _statement(dialect: str, table: Table, index: tuple[str, ...] | None,
               update: tuple[str, ...], returning: tuple[str, ...] = ()) -> Any:
    """INSERT … ON CONFLICT (``index``, or the primary key when None) DO UPDATE ``update`` (or
    DO NOTHING) [RETURNING ``returning``]; the values come as parameters."""
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(index or ()),
            set_={column: statement.excluded[column] for column in update})
    else:
        statement = statement.on_conflict_do_nothing(
            index_elements=list(index) if index else None)
    if returning:
        statement = statement.returning(*(table.c[column] for column in returning))
    return statement


def upsert_statement(dialect: str, model: Any, *, index: Sequence[str], update: Sequence[str],
                     returning: Sequence[str] = ()) -> Any:
    """``upsert``'s statement, to run on a connection of ``dialect`` (``Store.dialect``)."""
    return _statement(dialect, model.__table__, tuple(index), tuple(update), tuple(returning))


async def upsert(
    session: AsyncSession, model: Any, values: dict[str, Any], *, index: Sequence[str],
    update: Sequence[str], returning: Sequence[str] = (),
) -> Any:
    """Insert ``values``, or on a key clash update the ``update`` columns (or nothing). With
    ``returning``, the row's columns as they are afterwards, read by the same statement."""
    statement = _statement(_dialect(session), model.__table__, tuple(index), tuple(update),
                           tuple(returning))
    result = await _execute(session, statement, values)
    return result.one() if returning else None


async def insert_ignore(session: AsyncSession, model: Any, values: dict[str, Any]) -> bool:
    """Insert a row unless one with the same primary key exists; True if it was inserted."""
    statement = insert_ignore_statement(_dialect(session), model)
    return (await _execute(session, statement, values)).rowcount == 1


def insert_ignore_statement(dialect: str, model: Any) -> Any:
    """``insert_ignore``'s statement, to run on a connection of ``dialect``; its result's
    ``rowcount`` is 1 if the row was inserted."""
    return _statement(dialect, model.__table__, None, ())


async def _execute(session: AsyncSession, statement: Any, values: dict[str, Any]) -> Any:
    # Objects added to the session go first, as session.execute would send them (a row may
    # refer to one); the statement itself goes straight to the connection.
    return await execute_in_session(session, statement, values, flush=True)
