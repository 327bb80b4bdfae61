"""SQLAlchemy's aiosqlite adapter, with a statement in one trip to aiosqlite's thread.

aiosqlite runs each call on a thread of its own, and every call is a round trip: queue the
function, wake the thread, wake the event loop with the answer. SQLAlchemy's adapter makes four
of them per statement (open a cursor, execute, fetch the rows, close the cursor), which the
benchmark measured at about 75 µs of the event loop's CPU each, most of what a short statement
costs. The cursor here does all four in one function on the thread.

Passed to ``create_async_engine(module=…)``, so the dialect, its URL (``sqlite+aiosqlite``) and
everything else stay SQLAlchemy's own; only the cursor changes. It uses aiosqlite's
``Connection._execute`` (queue a function for the thread), which aiosqlite's own cursors use.

**Statements on the loop.** Even one trip costs more than the short statements of a reply (an
indexed read or a one-row write takes SQLite a few microseconds; the trip wakes a thread and then
the event loop, about 75 µs of CPU and two context switches). Where the work is known to be
short, the replies to Telegram updates (``bot/inbox.py`` sets it for each update it handles),
statements run on the event loop's own thread instead (``statements_on_loop``): the benchmark
measured a quarter less CPU per update. It cannot stall the loop on a lock: in WAL mode reads
never wait for writers, this process's writers queue on ``Store``'s writer turn before they
begin, and a ``BEGIN IMMEDIATE`` that meets another process's write lock (an import, a second
bot) is not waited for on the loop but handed to the thread, which waits in SQLite's busy
handler as before. Long work (staff reports, exports, the worker's sweeps, the HTTP API) keeps
the default: its statements run on aiosqlite's thread while the loop serves the replies.
"""

from __future__ import annotations

import collections
import contextlib
import sqlite3
from collections.abc import Iterator, Sequence
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import EMPTY_DICT, await_only

# What one trip brings back: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any], int, int | None]

# Whether this task's statements run on the event loop's thread (see the module's docstring).
_on_loop: ContextVar[bool] = ContextVar("ticketbot_sqlite_statements_on_loop", default=False)
# The busy timeout every connection has (``storage.db.store``), restored after a fail-fast try.
BUSY_TIMEOUT_MS = 30_000


@contextlib.contextmanager
def statements_on_loop(on: bool = True) -> Iterator[None]:
    """Run this block's SQLite statements on the event loop's thread (``on``), or on
    aiosqlite's (``on=False``: work that may take long, inside a block that runs on the loop)."""
    token = _on_loop.set(on)
    try:
        yield
    finally:
        _on_loop.reset(token)


def on_loop() -> bool:
    return _on_loop.get()


async def _no_wait() -> None:
    """Awaited once per statement run on the loop: SQLAlchemy's async engine refuses a call that
    never awaited (its guard against a synchronous driver); this one returns at once."""


def begin_immediate(driver: Any) -> None:
    """``BEGIN IMMEDIATE`` on an aiosqlite connection, from SQLAlchemy's greenlet: on the loop
    when allowed and the write lock is free at once; else on the thread, which waits for it."""
    if on_loop():
        connection: sqlite3.Connection = driver._conn
        connection.execute("PRAGMA busy_timeout=0")
        try:
            connection.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:  # extended codes too
                raise
        finally:
            connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    await_only(driver.execute("BEGIN IMMEDIATE"))


def begin(driver: Any) -> None:
    """A deferred ``BEGIN`` takes no lock: on the loop when allowed."""
    if on_loop():
        driver._conn.execute("BEGIN")
    else:
        await_only(driver.execute("BEGIN"))


def _execute(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    """On aiosqlite's thread, or on the loop's (``statements_on_loop``): the statement, its
    rows, and the cursor closed again."""
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _executemany(connection: sqlite3.Connection, operation: str,
                 parameters: Sequence[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, parameters)
        return None, [], cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor whose every statement is one call on aiosqlite's thread. Nothing
    stays open on the thread between calls, so closing it needs no trip either."""

    __slots__ = ("_description", "_lastrowid", "_rowcount")
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: AsyncAdapt_aiosqlite_connection) -> None:
        # Not the base class's __init__: it opens a cursor on the thread, a trip for nothing.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description = None
        self._rowcount = -1
        self._lastrowid = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int | None:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass  # the rows come back all at once

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> None:
        self._run(_execute, operation, parameters)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> None:
        self._run(_executemany, operation, seq_of_parameters)

    def _run(self, function: Any, operation: Any, parameters: Any) -> None:
        try:
            if on_loop():
                await_only(_no_wait())
                outcome = function(self._connection._conn, operation, parameters)
            else:
                outcome = await_only(self._call(function, operation, parameters))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _call(self, function: Any, operation: Any, parameters: Any) -> _Outcome:
        connection: aiosqlite.Connection = self._connection
        async with self._adapt_connection._execute_mutex:
            return await connection._execute(function, connection._conn, operation, parameters)


class OneTripConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = OneTripCursor

    def commit(self) -> None:
        # A statement run outside BEGIN (a hot read, ``Store.read_connection``) ended its own
        # transaction: asking the thread to commit nothing would be a trip for nothing.
        if self._in_transaction():
            self._end(sqlite3.Connection.commit, super().commit)

    def rollback(self) -> None:
        # The pool rolls back every connection it takes back, even after a commit; only after
        # an error does a transaction remain for the thread to end.
        if self._in_transaction():
            self._end(sqlite3.Connection.rollback, super().rollback)

    def _end(self, on_this_thread: Any, on_the_thread: Any) -> None:
        if not on_loop():
            on_the_thread()
            return
        try:
            on_this_thread(self._connection._conn)
        except Exception as error:
            self._handle_exception(error)

    def _in_transaction(self) -> bool:
        # A flag read, no trip: SQLAlchemy never runs two calls on one connection at once.
        connection: sqlite3.Connection | None = self._connection._connection
        return connection is not None and connection.in_transaction


class OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module SQLAlchemy's aiosqlite dialect is given, handing out our connections."""

    def connect(self, *args: Any, **kwargs: Any) -> OneTripConnection:
        # Made on aiosqlite's thread, used on it and (``statements_on_loop``) on the loop's,
        # never on both at once: SQLAlchemy runs one call at a time on a connection.
        kwargs["check_same_thread"] = False
        adapted = super().connect(*args, **kwargs)
        return OneTripConnection(self, adapted._connection)


def dbapi() -> OneTripDBAPI:
    return OneTripDBAPI(aiosqlite, sqlite3)
