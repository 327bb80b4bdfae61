"""The hot reads' statements compiled once and run straight on the driver's cursor.

``Connection.execute`` does, for every statement, work whose answer never changes for a
statement built once at import (``Store.read_rows``' are): it walks the statement to make its
cache key and looks the compiled form up, builds an execution context, re-reads the bind and
result processors, and wraps the rows in a result object. For a one-row indexed read that is
most of the CPU the bot spends on it (``bench/store_trips.py``). A ``PreparedStatement`` does
that work once per statement and dialect; each run then only orders the parameters, executes on
the pooled connection's own DBAPI cursor and builds the rows, still SQLAlchemy ``Row`` objects,
with the same processors SQLAlchemy would apply.

What stays SQLAlchemy's: the pool and its checkout, the connection's isolation level, the
cursor-execute events (the benchmark's statement counter), and the errors, raised through
``Connection._cursor_execute`` as the usual ``sqlalchemy.exc`` wrappers, a dead connection
invalidated. A statement this cannot run exactly as SQLAlchemy would (one rendering values at
execution time: an expanding ``IN``, a literal-execute limit) is refused with ``Unpreparable``
and goes through ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler

_Processor = Callable[[Any], Any] | None


class Unpreparable(Exception):
    """The statement renders values at execution time: ``Connection.execute`` must run it."""


class PreparedStatement:
    """One statement compiled for one dialect, with its parameters' order and processors."""

    __slots__ = ("_bind_processors", "_columns", "_defaults", "_metadata", "_names",
                 "_required", "_result_processors", "sql")

    def __init__(self, statement: Executable, dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        if (not isinstance(compiled, SQLCompiler) or not compiled.positional
                or compiled.post_compile_params or compiled.literal_execute_params):
            raise Unpreparable(type(statement).__name__)
        self.sql = compiled.string
        # The values the statement itself carries (``state == 'pending'``); the caller's
        # parameters are laid over them on each run.
        self._defaults = compiled.construct_params(_check=False)
        self._names = tuple(compiled.positiontup or ())
        self._required = frozenset(name for name, bind in compiled.binds.items() if bind.required)
        processors = compiled._bind_processors
        self._bind_processors = tuple(processors.get(name) for name in self._names)
        self._columns = tuple((entry.keyname, entry.type) for entry in compiled._result_columns)
        self._metadata = SimpleResultMetaData([keyname for keyname, _ in self._columns])
        # Set from the first run's cursor description: PostgreSQL's processors depend on the
        # type the server names for each column.
        self._result_processors: Sequence[_Processor] | None = None

    def parameters(self, given: Mapping[str, Any]) -> tuple[Any, ...]:
        """The positional parameters for ``given``, each through its bind processor."""
        if not self._required <= given.keys():
            missing = ", ".join(sorted(self._required - given.keys()))
            raise InvalidRequestError(f"A value is required for bind parameter {missing}")
        values = {**self._defaults, **given} if given else self._defaults
        return tuple(value if process is None else process(value)
                     for value, process in zip((values[name] for name in self._names),
                                               self._bind_processors, strict=True))

    def rows(self, dialect: Dialect, description: Sequence[Any] | None,
             fetched: Sequence[Any]) -> list[Row[Any]]:
        """``fetched`` as SQLAlchemy rows, each value through its result processor."""
        if self._result_processors is None:
            self._result_processors = self._processors_for(dialect, description or ())
        metadata, processors = self._metadata, self._result_processors
        key_to_index = metadata._key_to_index
        return [Row(metadata, processors, key_to_index, row) for row in fetched]

    def _processors_for(self, dialect: Dialect, description: Sequence[Any]) -> list[_Processor]:
        if len(description) != len(self._columns):
            raise Unpreparable("the cursor's columns are not the statement's")
        return [type_._cached_result_processor(dialect, column[1])
                for (_, type_), column in zip(self._columns, description, strict=True)]


def run(connection: Connection, prepared: PreparedStatement,
        parameters: Mapping[str, Any]) -> list[Row[Any]]:
    """``prepared`` executed on ``connection``'s DBAPI cursor: its rows."""
    cursor = connection.connection.cursor()
    try:
        connection._cursor_execute(cursor, prepared.sql, prepared.parameters(parameters))
        description = cursor.description
        fetched = cursor.fetchall() if description else ()
    finally:
        cursor.close()
    return prepared.rows(connection.dialect, description, fetched)
