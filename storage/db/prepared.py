"""The hot statements compiled once and run straight on the driver's cursor.

``Connection.execute`` does, for every statement, work whose answer never changes for a
statement built once at import (the hot reads' and writes' are): it walks the statement to make its
cache key and looks the compiled form up, builds an execution context, re-reads the bind and
result processors, and wraps the rows in a result object. For a one-row indexed read that is
most of the CPU the bot spends on it (``bench/store_trips.py``). A ``PreparedStatement`` does
that work once per statement and dialect; each run then only orders the parameters, executes on
the pooled connection's own DBAPI cursor and builds the rows, still SQLAlchemy ``Row`` objects,
with the same processors SQLAlchemy would apply. ``Store`` keeps them (``StatementCache``) for
its hot reads and for the statements of its idempotent writes (``PreparedConnection``), and
its sessions run their Core statements through it (``execute_in_session``).

What stays SQLAlchemy's: the pool and its checkout, the connection's isolation level, the
cursor-execute events (the benchmark's statement counter), and the errors, raised through
``Connection._cursor_execute`` as the usual ``sqlalchemy.exc`` wrappers, a dead connection
invalidated. A statement this cannot run exactly as SQLAlchemy would (one rendering values at
execution time: an expanding ``IN``, a literal-execute limit; an insert whose Python-side
defaults are computed at execution; several rows of parameters at once) is refused with
``Unpreparable`` and goes through ``Connection.execute``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.engine.result import SimpleResultMetaData
from sqlalchemy.exc import InvalidRequestError, MultipleResultsFound, NoResultFound
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import ValuesBase
from sqlalchemy.util import greenlet_spawn

_Processor = Callable[[Any], Any] | None
_T = TypeVar("_T")

# Statements a store keeps compiled: its hot ones are a handful; a caller building statements
# on the fly would otherwise grow the cache for ever.
MAX_PREPARED_STATEMENTS = 256


class Unpreparable(Exception):
    """The statement renders values at execution time: ``Connection.execute`` must run it."""


class PreparedStatement:
    """One statement compiled for one dialect, with its parameters' order and processors."""

    __slots__ = ("_bind_processors", "_columns", "_defaults", "_metadata", "_names",
                 "_required", "_result_processors", "column_keys", "sql")

    def __init__(self, statement: Executable, dialect: Dialect,
                 column_keys: Collection[str] | None = None) -> None:
        """``column_keys``: for an insert or update given its values as parameters, their
        names (the columns it writes); it then runs only with exactly those."""
        compiled = statement.compile(
            dialect=dialect, column_keys=sorted(column_keys) if column_keys is not None else None)
        if (not isinstance(compiled, SQLCompiler) or not compiled.positional
                or compiled.post_compile_params or compiled.literal_execute_params
                or compiled.insert_prefetch or compiled.update_prefetch):
            raise Unpreparable(type(statement).__name__)
        self.sql = compiled.string
        self.column_keys = frozenset(column_keys) if column_keys is not None else None
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
            # Cannot happen for a statement of columns; were it to, better an error than
            # values read through another column's processor.
            raise RuntimeError(f"{len(description)} columns came for {len(self._columns)}")
        return [type_._cached_result_processor(dialect, column[1])
                for (_, type_), column in zip(self._columns, description, strict=True)]


class PreparedResult:
    """What a prepared statement gave: its rows (if it returns any) and the rows it counted,
    read as from SQLAlchemy's result."""

    __slots__ = ("rowcount", "rows")

    def __init__(self, rows: list[Row[Any]], rowcount: int) -> None:
        self.rows = rows
        self.rowcount = rowcount

    def all(self) -> list[Row[Any]]:
        return self.rows

    def one(self) -> Row[Any]:
        if not self.rows:
            raise NoResultFound("No row was found when one was required")
        if len(self.rows) > 1:
            raise MultipleResultsFound("Multiple rows were found when exactly one was required")
        return self.rows[0]

    def first(self) -> Row[Any] | None:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None

    def scalar_one(self) -> Any:
        return self.one()[0]


def run(connection: Connection, prepared: PreparedStatement,
        parameters: Mapping[str, Any]) -> PreparedResult:
    """``prepared`` executed on ``connection``'s DBAPI cursor."""
    cursor = connection.connection.cursor()
    try:
        connection._cursor_execute(cursor, prepared.sql, prepared.parameters(parameters))
        description = cursor.description
        fetched = cursor.fetchall() if description else ()
        rowcount = cursor.rowcount
    finally:
        cursor.close()
    return PreparedResult(prepared.rows(connection.dialect, description, fetched), rowcount)


class StatementCache:
    """A store's prepared statements, keyed by the statement object itself: the hot ones are
    built once, at import or by a cached function. None for one that must go through
    ``Connection.execute``."""

    def __init__(self, dialect: Dialect) -> None:
        self._dialect = dialect
        self._prepared: dict[Executable, PreparedStatement | None] = {}

    def get(self, statement: Executable,
            parameters: Mapping[str, Any]) -> PreparedStatement | None:
        try:
            prepared = self._prepared[statement]
        except KeyError:
            prepared = self._prepare(statement, parameters)
        if prepared is not None and prepared.column_keys is not None \
                and prepared.column_keys != parameters.keys():
            return None  # other columns than the first run's: SQLAlchemy compiles for them
        return prepared

    def _prepare(self, statement: Executable,
                 parameters: Mapping[str, Any]) -> PreparedStatement | None:
        if len(self._prepared) >= MAX_PREPARED_STATEMENTS:
            return None  # full: SQLAlchemy's own cache of compiled forms serves the rest
        column_keys = parameters.keys() if isinstance(statement, ValuesBase) else None
        try:
            prepared = PreparedStatement(statement, self._dialect, column_keys)
        except Unpreparable:
            prepared = None
        self._prepared[statement] = prepared
        return prepared


class PreparedConnection:
    """A connection whose ``execute`` runs statements its store keeps prepared, falling back
    to SQLAlchemy's ``Connection.execute`` for the others (and for several rows of
    parameters at once): what ``Store.idempotent_write``'s work is given."""

    __slots__ = ("_cache", "connection")

    def __init__(self, connection: Connection, cache: StatementCache) -> None:
        self.connection = connection
        self._cache = cache

    def execute(self, statement: Executable,
                parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None = None,
                ) -> Any:
        if parameters is None:
            parameters = {}
        if isinstance(parameters, Mapping):
            prepared = self._cache.get(statement, parameters)
            if prepared is not None:
                return run(self.connection, prepared, parameters)
        return self.connection.execute(statement, parameters)

    def scalar(self, statement: Executable, parameters: Mapping[str, Any] | None = None) -> Any:
        """The first column of the first row, as ``Connection.scalar``."""
        return self.execute(statement, parameters).scalar()


# Where a store's sessions find its prepared statements (``Session.info``).
SESSION_STATEMENTS = "ticketbot_prepared_statements"
# Set in the ``info`` of a session whose whole transaction runs in one trip into SQLAlchemy's
# greenlet (``Store.write_whole``): its statements run at once, not in a trip of their own.
SESSION_IN_ONE_TRIP = "ticketbot_session_in_one_trip"


def run_through(coroutine: Coroutine[Any, Any, _T]) -> _T:
    """Run ``coroutine`` to its end here, synchronously: for a use case whose every ``await``
    is a statement run by ``execute_in_session`` in a session ``SESSION_IN_ONE_TRIP``, which
    never suspends. Called inside SQLAlchemy's greenlet, where the driver's own waits still
    switch out to the event loop (as every synchronous statement there does). A coroutine that
    does suspend (it awaited something else) is closed and refused."""
    try:
        coroutine.send(None)
    except StopIteration as finished:
        return finished.value
    coroutine.close()
    raise RuntimeError("a use case run in one trip awaited something other than a statement")


async def execute_in_session(session: AsyncSession, statement: Executable,
                             parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]]
                             | None = None, *, flush: bool = False) -> Any:
    """``statement`` on ``session``'s connection, in its transaction, prepared as
    ``PreparedConnection.execute`` runs it and in one trip into SQLAlchemy's greenlet: the Core
    statements of the use cases, where ``(await session.connection()).execute(…)`` makes two
    trips and compiles the statement's cache key each time. ``flush``: send the objects added
    to the session first (a row the statement refers to may be among them)."""
    sync_session = session.sync_session
    if sync_session.info.get(SESSION_IN_ONE_TRIP):
        # Already inside the transaction's one trip (``run_through``): no second one.
        return _execute_in_session(sync_session, statement, parameters, flush)
    return await greenlet_spawn(_execute_in_session, sync_session, statement, parameters, flush)


def _execute_in_session(session: Session, statement: Executable,
                        parameters: Mapping[str, Any] | Sequence[Mapping[str, Any]] | None,
                        flush: bool) -> Any:
    if flush:
        session.flush()
    prepared = PreparedConnection(session.connection(), session.info[SESSION_STATEMENTS])
    return prepared.execute(statement, parameters)
