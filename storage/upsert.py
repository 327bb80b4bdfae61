"""Insert-or-update that the database settles, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def _insert_for(session: AsyncSession, model: Any) -> Any:
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


async def upsert(
    session: AsyncSession, model: Any, values: dict[str, Any], *, index: Sequence[str],
    update: Sequence[str],
) -> None:
    """Insert ``values``, or on a key clash update the ``update`` columns (or nothing)."""
    statement = _insert_for(session, model).values(**values)
    if update:
        statement = statement.on_conflict_do_update(
            index_elements=list(index),
            set_={column: statement.excluded[column] for column in update},
        )
    else:
        statement = statement.on_conflict_do_nothing(index_elements=list(index))
    await session.execute(statement)


async def insert_ignore(session: AsyncSession, model: Any, values: dict[str, Any]) -> None:
    """Insert a row unless one with the same primary key exists."""
    await session.execute(_insert_for(session, model).values(**values).on_conflict_do_nothing())
