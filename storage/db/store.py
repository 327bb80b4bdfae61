"""The store: one async engine, and units of work over it.

A unit of work is one transaction; it commits only when its block ends without an error. Writes
on SQLite start with ``BEGIN IMMEDIATE`` so two writers queue on the database lock instead of
failing when one upgrades a read lock (SQLite has no ``SELECT … FOR UPDATE``).

What is erased stays erased on SQLite (docs/privacy.md): every connection turns
``secure_delete`` on, so a deleted or overwritten row's bytes are zeroed in the file rather than
left in a free page; the file is created readable by its owner only (0600), and SQLite gives its
``-wal`` and ``-shm`` files the database file's permissions.
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import datetime as dt
import itertools
import os
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Executable, Row, event, exc, inspect, make_url
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.util import greenlet_spawn

from storage import applying
from storage.db import sqlite_driver
from storage.db.prepared import (
    SESSION_IN_ONE_TRIP,
    SESSION_STATEMENTS,
    PreparedConnection,
    StatementCache,
    run_through,
)
from storage.db.sqlite_driver import statements_on_loop

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///ticketbot.db"


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# Connections kept open, and how many more a burst may open. A pool much smaller than the
# updates in flight (up to 64, bot/update_processor.py) with overflow opens and closes
# connections all the time, and a new one costs more than the statements it serves (PostgreSQL
# forks a backend, and asyncpg prepares every statement again on it). PostgreSQL: at 32+8 the
# overflow's connections closed as soon as the queue had room and opened again at the next
# burst, 70 backends in 10 s of the benchmark, a tenth of a core; 40+0 keeps them all, and two
# processes fit in PostgreSQL's default max_connections (100). SQLite has one writer at a time,
# and writers waiting on its lock sleep in its busy handler; waiting for a pooled connection
# instead queues them in order: 8+0 gave the same throughput as 24+8 with a p99 of 1.9 s
# instead of 3.5 s.
POOL = {"sqlite": (8, 0), "postgresql": (40, 0)}


# ``TICKETBOT_DATABASE_URL`` options for PgBouncer in transaction pooling mode (what managed
# PostgreSQL offers), where each transaction may run on another server connection:
#   ?pgbouncer=true             all that follows, and reads in transactions (Store)
#   ?prepared_statement_cache_size=0   SQLAlchemy keeps no prepared statements per connection
#   ?statement_cache_size=0     neither does asyncpg
# With ``pgbouncer=true`` every prepared statement also gets a unique name, so that one left on a
# server connection by another client never clashes with ours (SQLAlchemy's asyncpg dialect,
# "Prepared Statement Name with PGBouncer").
PGBOUNCER_OPTION = "pgbouncer"
_TRUE = {"1", "true", "yes", "on", "transaction"}
_statement_names = itertools.count(1)


def _unique_statement_name() -> str:
    return f"__ticketbot_{os.getpid()}_{next(_statement_names)}__"


def engine_arguments(url: str | URL, kwargs: dict[str, Any]) -> tuple[URL, dict[str, Any], bool]:
    """The URL and engine arguments SQLAlchemy gets for ``url``, with our URL options applied;
    and whether the database is reached through PgBouncer in transaction pooling mode."""
    parsed = make_url(url)
    if not parsed.drivername.startswith("postgresql"):
        return parsed, kwargs, False
    query = dict(parsed.query)
    pgbouncer = str(query.pop(PGBOUNCER_OPTION, "")).lower() in _TRUE
    connect_args = dict(kwargs.get("connect_args", {}))
    if "statement_cache_size" in query:  # asyncpg wants an int; the dialect passes strings
        connect_args["statement_cache_size"] = int(query.pop("statement_cache_size"))
    if pgbouncer:
        connect_args.setdefault("statement_cache_size", 0)
        connect_args.setdefault("prepared_statement_name_func", _unique_statement_name)
        query.setdefault("prepared_statement_cache_size", "0")
    if connect_args:
        kwargs = {**kwargs, "connect_args": connect_args}
    return parsed.set(query=query), kwargs, pgbouncer


def _make_engine(url: str, **kwargs: Any) -> AsyncEngine:
    # Statement parameters hold names and e-mail addresses: keep them out of error messages.
    kwargs.setdefault("hide_parameters", True)
    for pool_option in ("pool_size", "max_overflow"):  # None: the default below
        if kwargs.get(pool_option, 0) is None:
            del kwargs[pool_option]
    if url.startswith("sqlite"):
        # One trip per statement; a commit or rollback with no transaction open makes none,
        # as the pool's rollback of every connection it takes back, even after a commit.
        kwargs.setdefault("module", sqlite_driver.dbapi())
        private_sqlite_file(url)
        if make_url(url).database not in (None, "", ":memory:"):  # a file: a queue pool
            kwargs.setdefault("pool_size", POOL["sqlite"][0])
            kwargs.setdefault("max_overflow", POOL["sqlite"][1])
        else:  # one connection, shared: nothing to size
            kwargs.pop("pool_size", None)
            kwargs.pop("max_overflow", None)
        engine = create_async_engine(url, **kwargs)
        _configure_sqlite(engine)
        return engine
    kwargs.setdefault("pool_size", POOL["postgresql"][0])
    kwargs.setdefault("max_overflow", POOL["postgresql"][1])
    sqlalchemy_url, kwargs, _ = engine_arguments(url, kwargs)
    engine = create_async_engine(sqlalchemy_url, **kwargs)
    _configure_postgresql(engine)
    return engine


def _configure_postgresql(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # Instead of pool_pre_ping, which costs three round trips per checkout on asyncpg
        # (BEGIN, ";", ROLLBACK), as many as the statements of a short transaction: asyncpg
        # sees the socket close as soon as the server ends the backend (a restart, an
        # administrator), so a pooled connection that died is known without asking. The pool
        # then opens a new one. A connection lost without a word fails its next statement;
        # SQLAlchemy then drops the pool's older connections, and the inbox retries the update.
        if dbapi_connection.driver_connection.is_closed():
            raise exc.DisconnectionError("the database closed this pooled connection")


SQLITE_FILE_MODE = 0o600


def private_sqlite_file(url: str | URL) -> None:
    """Create the SQLite database file of ``url`` readable and writable by its owner only, or
    take those rights back from a file made before (and from its ``-wal``, ``-shm``). SQLite
    would create it 0644 (less the umask), and gives its -wal and -shm the file's own mode."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return
    if parsed.database.startswith("file:"):
        return  # a URI filename: SQLite opens what it names, we leave it alone
    path = Path(parsed.database)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, SQLITE_FILE_MODE))  # empty: a database
    except OSError:
        return  # no such folder, no right to it: SQLite's own open will say so, when it is used
    for file in (path, *(path.with_name(path.name + suffix) for suffix in ("-wal", "-shm"))):
        with contextlib.suppress(FileNotFoundError):
            if file.stat().st_mode & 0o077:
                file.chmod(SQLITE_FILE_MODE)


def secure_delete(dbapi_connection: Any) -> None:
    """On every SQLite connection, migrations' included: a deleted row's bytes are overwritten
    with zeros, not left in a free page of the file (docs/privacy.md)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves: the driver's implicit BEGIN is always DEFERRED.
        dbapi_connection.isolation_level = None
        secure_delete(dbapi_connection)
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={sqlite_driver.BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        options = connection.get_execution_options()
        if options.get("sqlite_no_begin", False):
            return  # each statement a transaction of its own (Store.read_connection)
        # Straight to aiosqlite: one trip to its thread, where a statement through SQLAlchemy
        # takes four (cursor, execute, fetch, close) and most of a transaction's CPU; or none,
        # on the loop (``sqlite_driver.statements_on_loop``).
        driver = connection.connection.driver_connection
        if options.get("sqlite_immediate", False):
            sqlite_driver.begin_immediate(driver)
        else:
            sqlite_driver.begin(driver)


_T = TypeVar("_T")

# The key of ``session.info`` under which a write transaction finds the webhook endpoints its
# changes are sent to (storage/webhook_outbox.py).
WEBHOOK_ENDPOINTS = "ticketbot_webhook_endpoints"


def _deciding(idempotent: bool) -> applying.Applying | None:
    """The update a write transaction decides (marks done), if it is the first that is not
    ``idempotent`` of the update being applied; else None."""
    entry = None if idempotent else applying.current()
    return entry if entry is not None and not entry.marked_done else None


class Store:
    """The order store: hands out read and write units of work. ``webhook_endpoints`` are
    where changes are sent as webhooks (none by default: nothing is written for them)."""

    def __init__(
        self,
        url: str = DEFAULT_DATABASE_URL,
        *,
        secret: str | None = None,
        claim_link_ttl: dt.timedelta = dt.timedelta(days=14),
        **engine_kwargs: Any,
    ) -> None:
        self.url = url
        self.claim_link_ttl = claim_link_ttl
        self.webhook_endpoints: tuple[str, ...] = ()
        self._configured_secret = secret
        self._secret: bytes | None = None
        self.engine = _make_engine(url, **engine_kwargs)
        self.dialect = self.engine.dialect.name  # "sqlite" or "postgresql"
        self.is_sqlite = self.dialect == "sqlite"
        self.through_pgbouncer = engine_arguments(url, {})[2]
        self._write_engine = self.engine.execution_options(sqlite_immediate=True)
        # The hot statements, compiled once (storage.db.prepared): the reads, the idempotent
        # writes, and the Core statements sessions run through ``execute_in_session``.
        self._statements = StatementCache(self.engine.sync_engine.dialect)
        session_info = {SESSION_STATEMENTS: self._statements}
        # PostgreSQL's READ COMMITTED gives each statement a snapshot of its own, so a read-only
        # transaction adds only its BEGIN and COMMIT, two round trips; reads run without one.
        # On SQLite a read transaction holds one snapshot of the file, and its BEGIN is local.
        # Not through PgBouncer in transaction mode: there, a statement outside a transaction
        # may be prepared on one server connection and run on another.
        self._read_engine = (self.engine if self.is_sqlite or self.through_pgbouncer
                             else self.engine.execution_options(isolation_level="AUTOCOMMIT"))
        self._read_sessions = async_sessionmaker(self._read_engine, expire_on_commit=False,
                                                 info=session_info)
        # The hot reads are one statement each, which needs no BEGIN and COMMIT around it on
        # SQLite either: two trips to aiosqlite's thread out of three.
        self._statement_engine = (self.engine.execution_options(sqlite_no_begin=True)
                                  if self.is_sqlite else self._read_engine)
        self._write_sessions = async_sessionmaker(self._write_engine, expire_on_commit=False,
                                                  info=session_info)
        # The idempotent writes' statements are each harmless alone (``idempotent_write``): on
        # PostgreSQL each is a transaction of its own, without the BEGIN and COMMIT round
        # trips. On SQLite their BEGIN IMMEDIATE is local and takes the write lock up front.
        self._idempotent_engine = (self._write_engine if self.is_sqlite or self.through_pgbouncer
                                   else self._read_engine)
        # SQLite lets one writer in at a time. Its waiting writers sleep in the busy handler
        # (1, 2, 5 … 100 ms naps) and wake late, leaving the lock idle meanwhile; this
        # process's writers queue here instead and follow one another at once. The busy
        # handler still arbitrates between processes. PostgreSQL locks rows, not the database.
        self._writer_turn = asyncio.Lock() if self.is_sqlite else contextlib.nullcontext()

    @contextlib.asynccontextmanager
    async def write(self, *, idempotent: bool = False) -> AsyncIterator[AsyncSession]:
        """A transaction that changes things: committed when the block ends, else rolled back.

        While a Telegram update is being applied (``storage.applying``), the first such
        transaction also marks the update done, or raises ``AlreadyApplied`` if an earlier
        attempt did. ``idempotent`` transactions, harmless to repeat on a replay, do neither.
        """
        deciding = _deciding(idempotent)
        async with self._writer_turn, self._write_sessions() as session, session.begin():
            if self.webhook_endpoints:
                session.info[WEBHOOK_ENDPOINTS] = self.webhook_endpoints
            if deciding is not None:
                await deciding.mark_done(session)
            yield session
        if deciding is not None:
            deciding.marked_done = True

    async def write_whole(self, work: Callable[[AsyncSession], Coroutine[Any, Any, _T]], *,
                          idempotent: bool = False) -> _T:
        """``write`` for a use case given whole, ``work(session)``, run in one trip into
        SQLAlchemy's greenlet, commit included, instead of a trip per statement, the commit
        and the session's close (the last in a task of its own). ``work`` may await only
        ``execute_in_session`` on the session (``prepared.run_through`` refuses anything else);
        it keeps the session's hooks (the barcode feed's commit, the webhook endpoints)."""
        return await self._write_in_one_trip(self._write_whole, work, idempotent)

    def _write_whole(self, work: Callable[[AsyncSession], Coroutine[Any, Any, _T]],
                     deciding: applying.Applying | None) -> _T:
        session = self._write_sessions()
        with session.sync_session as sync, sync.begin():
            sync.info[SESSION_IN_ONE_TRIP] = True
            if self.webhook_endpoints:
                sync.info[WEBHOOK_ENDPOINTS] = self.webhook_endpoints
            if deciding is not None:  # an update, or a Mini App action: each marks its own way
                run_through(deciding.mark_done(session))
            return run_through(work(session))

    async def write_prepared(self, work: Callable[[PreparedConnection], _T], *,
                             idempotent: bool = False) -> _T:
        """``work``, prepared statements on a bare connection, as one transaction run whole in
        one trip into SQLAlchemy's greenlet: ``write`` without the ORM session, which cost
        about 160 µs of CPU on SQLite before its first statement, and each ``await`` on it a
        trip of its own. Marks the update being applied done, or refuses it, as ``write``
        does, unless ``idempotent``. Not for work that announces webhooks or changes barcodes
        (both note their rows in the session, for its commit): ``write_whole`` carries them."""
        return await self._write_in_one_trip(self._write_prepared, work, idempotent)

    async def _write_in_one_trip(self, transaction: Callable[[Any, Any], _T], work: Any,
                                 idempotent: bool) -> _T:
        """``transaction(work, deciding)`` in SQLAlchemy's greenlet, in the writers' turn; the
        update it decides is marked once it committed."""
        deciding = _deciding(idempotent)
        async with self._writer_turn:
            result = await greenlet_spawn(transaction, work, deciding)
        if deciding is not None:
            deciding.marked_done = True
        return result

    def _write_prepared(self, work: Callable[[PreparedConnection], _T],
                        deciding: applying.Applying | None) -> _T:
        with self._write_engine.sync_engine.begin() as connection:
            prepared = PreparedConnection(connection, self._statements)
            if deciding is not None:
                deciding.mark_done_on(prepared)
            return work(prepared)

    @contextlib.asynccontextmanager
    async def write_connection(self) -> AsyncIterator[AsyncConnection]:
        """A bookkeeping transaction on a bare connection, without the ORM's per-session cost:
        for the hot statements prepared once (the inbox's). Never decides an update."""
        async with self._writer_turn, self._write_engine.begin() as connection:
            yield connection

    @contextlib.asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction."""
        async with self._read_sessions() as session, session.begin():
            yield session

    @contextlib.asynccontextmanager
    async def read_connection(self) -> AsyncIterator[AsyncConnection]:
        """A bare connection for reading, without the ORM session's cost: for the hot reads
        written as one Core statement each. Every statement is a transaction of its own, on
        SQLite as on PostgreSQL, so statements run here do not share a snapshot."""
        async with self._statement_engine.connect() as connection, connection.begin():
            yield connection

    async def read_rows(self, statement: Executable,
                        parameters: Mapping[str, Any] | None = None) -> Sequence[Row[Any]]:
        """The rows of one statement read on a bare connection, as ``read_connection`` reads
        them, but in a single trip into SQLAlchemy's greenlet: ``read_connection`` takes five
        (connect, begin, execute, commit, close) and closes in a task of its own. An indexed
        read on SQLite took 166 µs of CPU that way and 79 this way. For the reads of every
        update: the chat's step, the user, an order or ticket screen."""
        return await greenlet_spawn(self._read_rows, statement, parameters or {})

    def _read_rows(self, statement: Executable,
                   parameters: Mapping[str, Any]) -> Sequence[Row[Any]]:
        with self._statement_engine.sync_engine.connect() as connection:
            return PreparedConnection(connection, self._statements).execute(
                statement, parameters).all()

    async def idempotent_write(self, work: Callable[[PreparedConnection], _T]) -> _T:
        """``work``, a few prepared statements on a bare connection, run whole in one trip
        into SQLAlchemy's greenlet: for the writes of nearly every update that are harmless to
        repeat (the inbox's claims and finishes, a chat's step, a user's app language). Never
        decides an update.

        Each statement of ``work`` must be harmless alone, should a later one fail: on
        PostgreSQL each commits by itself (two round trips fewer per write, where a round trip
        is most of a short statement's cost to the bot); on SQLite, and through PgBouncer,
        they share a transaction."""
        async with self._writer_turn:
            return await greenlet_spawn(self._idempotent_write, work)

    def _idempotent_write(self, work: Callable[[PreparedConnection], _T]) -> _T:
        with self._idempotent_engine.sync_engine.begin() as connection:
            return work(PreparedConnection(connection, self._statements))

    @staticmethod
    def short_statements() -> contextlib.AbstractContextManager[None]:
        """Within this block the statements are known to be short (a reply's): on SQLite they
        run on the event loop's own thread, without a trip to aiosqlite's
        (``storage.db.sqlite_driver``). PostgreSQL's driver runs on the loop anyway."""
        return statements_on_loop(True)

    @staticmethod
    def long_statements() -> contextlib.AbstractContextManager[None]:
        """Within this block statements may take long (a report over a whole event): on
        SQLite they run on aiosqlite's thread, even inside a ``short_statements`` block."""
        return statements_on_loop(False)

    async def secret(self) -> bytes:
        """The key of link tokens: configured, or generated once and kept in the store."""
        if self._secret is None:
            from storage.tokens import load_or_create_secret

            async with self.write(idempotent=True) as session:
                self._secret = await load_or_create_secret(session, self._configured_secret)
        return self._secret

    async def truncate_wal(self) -> None:
        """SQLite: copy the write-ahead log into the file and empty it, so that what an erasure
        overwrote does not linger in the log's old frames (with ``secure_delete``, the file
        keeps none either). Waits for readers of older snapshots (the busy timeout). PostgreSQL
        keeps dead row versions until VACUUM reclaims them: nothing to do here."""
        if not self.is_sqlite:
            return
        # It waits for readers: on aiosqlite's thread, even when called from a reply.
        with self.long_statements():
            async with self.engine.execution_options(sqlite_no_begin=True).connect() as conn:
                await conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    async def close(self) -> None:
        await self.engine.dispose()


MIGRATIONS = Path(__file__).parent / "migrations"


def _alembic_config(url: str, engine_kwargs: dict[str, Any]):
    from alembic.config import Config

    config = Config(str(MIGRATIONS.parent / "alembic.ini"))
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["database_url"] = url
    config.attributes["engine_kwargs"] = engine_kwargs
    return config


def migrate(url: str, **engine_kwargs: Any) -> None:
    """Bring the database at ``url`` to the newest schema with Alembic (synchronous)."""
    from alembic import command

    command.upgrade(_alembic_config(url, engine_kwargs), "head")


def stamp_current(url: str, **engine_kwargs: Any) -> None:
    """Record a schema made from the models as migrated to the newest revision (tests)."""
    from alembic import command

    command.stamp(_alembic_config(url, engine_kwargs), "head")


def head_revisions() -> frozenset[str]:
    """The newest revisions of the migration scripts (one, unless branches are unmerged), read
    from the scripts' ``revision`` and ``down_revision`` as Alembic reads them, without
    importing Alembic; ``tests/test_migrations.py`` checks that both agree."""
    revisions: set[str] = set()
    replaced: set[str] = set()
    for script in (MIGRATIONS / "versions").glob("*.py"):
        names = _module_constants(script, ("revision", "down_revision"))
        if names.get("revision") is None:
            continue  # not a migration (__init__.py)
        revisions.add(names["revision"])
        down = names.get("down_revision")
        replaced.update((down,) if isinstance(down, str) else down or ())
    return frozenset(revisions - replaced)


def _module_constants(script: Path, wanted: tuple[str, ...]) -> dict[str, Any]:
    """The literal values a Python file assigns to the ``wanted`` names at its top level."""
    found: dict[str, Any] = {}
    for statement in ast.parse(script.read_text(encoding="utf-8")).body:
        if isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets, value = [statement.target], statement.value
        elif isinstance(statement, ast.Assign):
            targets, value = statement.targets, statement.value
        else:
            continue
        for target in targets:
            if isinstance(target, ast.Name) and target.id in wanted:
                found[target.id] = ast.literal_eval(value)
    return found


async def database_revisions(engine: AsyncEngine) -> frozenset[str]:
    """The revisions the database records in Alembic's ``alembic_version`` table; none for a
    database that has no such table yet."""
    async with engine.connect() as connection:
        if not await connection.run_sync(
                lambda sync: inspect(sync).has_table("alembic_version")):
            return frozenset()
        rows = await connection.exec_driver_sql("SELECT version_num FROM alembic_version")
        return frozenset(row[0] for row in rows)


async def open_store(url: str, **store_kwargs: Any) -> Store:
    """Open the store on ``url``, migrating the database first unless it is at the newest
    revision of the migration scripts already.

    Alembic and the migration scripts (about 6 MiB of memory, kept once imported) are loaded
    only when there is something to migrate: a bot restarted on a current database never
    imports them (docs/performance.md)."""
    engine_kwargs = {k: v for k, v in store_kwargs.items() if k == "connect_args"}
    store = Store(url, **store_kwargs)
    try:
        if await database_revisions(store.engine) != head_revisions():
            # The migration has connections of its own: none of ours keeps the old schema.
            await store.engine.dispose()
            await asyncio.to_thread(migrate, url, **engine_kwargs)
    except BaseException:
        await store.close()
        raise
    return store
