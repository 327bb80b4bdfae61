"""``column`` among a list of ids, with the whole list bound as one parameter.

``column.in_(bindparam(..., expanding=True))`` renders ``IN (?, ?, …)`` with one placeholder
per id at every execution: SQLAlchemy re-renders the statement each time, and the database
prepares one statement per length of the list. The inbox's claims and finishes run in batches
of every length from 1 to the number of updates in flight, so that cost was paid on nearly every
batch (issue 24). Bound whole, the statement is compiled and prepared once:

- PostgreSQL: ``column = ANY ($1)``, the list as an array;
- SQLite: ``column IN (SELECT value FROM json_each(?))``, the list as a JSON array, which
  SQLite walks with its own table-valued function and looks each id up in the index.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import BigInteger, Boolean, String, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator


class IdList(TypeDecorator[list[int]]):
    """A list of integer ids as one parameter: an array on PostgreSQL, JSON text elsewhere."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(BigInteger))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return list(value)
        # Integers only: anything else in the list is refused here, not matched as text.
        return json.dumps([int(item) for item in value])


class AmongIds(ColumnElement[bool]):
    """``column`` is one of the ids bound to the parameter ``name`` (a list of ints)."""

    inherit_cache = True
    _traverse_internals = [
        ("column", InternalTraversal.dp_clauseelement),
        ("ids", InternalTraversal.dp_clauseelement),
    ]
    type = Boolean()
    _is_implicitly_boolean = True  # a condition already: no "= 1" where booleans are ints

    def __init__(self, column: ColumnElement[Any], name: str) -> None:
        self.column = column
        self.ids = bindparam(name, type_=IdList())


def among_ids(column: ColumnElement[Any], name: str) -> AmongIds:
    return AmongIds(column, name)


@compiles(AmongIds)
def _any_of_array(element: AmongIds, compiler: Any, **kw: Any) -> str:
    return f"{compiler.process(element.column, **kw)} = ANY ({compiler.process(element.ids, **kw)})"


@compiles(AmongIds, "sqlite")
def _in_json_each(element: AmongIds, compiler: Any, **kw: Any) -> str:
    column, ids = compiler.process(element.column, **kw), compiler.process(element.ids, **kw)
    return f"{column} IN (SELECT value FROM json_each({ids}))"
