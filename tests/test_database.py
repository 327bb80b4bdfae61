"""The store's connection handling. On SQLite, where every trip to aiosqlite's thread counts: a
transaction is begun with one driver call, a statement is one call, and a connection is rolled
back on its return to the pool only if a transaction is still open on it. Writers of one
process take turns before SQLite's lock. On PostgreSQL, where every round trip waits a turn of
a busy event loop: reads and idempotent writes run without BEGIN and COMMIT, and a pooled
connection the server ended is replaced without asking the server first."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading

import asyncpg
import pytest
from pydantic import ValidationError
from sqlalchemy import event, func, select, text, update
from sqlalchemy.exc import IntegrityError, OperationalError

from bot.application import open_configured_store
from bot.settings import Settings
from storage.db.store import POOL, Store, utcnow
from storage.models import ChatNotification, TelegramUser
from tests.conftest import TEST_DATABASE_URL, ensure_postgres_schema


@pytest.fixture
def sqlite_store(store):
    if not store.is_sqlite:
        pytest.skip("SQLite's connection handling")
    return store


@pytest.fixture
def postgres_store(store):
    if store.is_sqlite:
        pytest.skip("PostgreSQL's connection handling")
    return store


async def users(store) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(TelegramUser))


async def test_a_connection_returned_inside_a_transaction_is_rolled_back(sqlite_store):
    store = sqlite_store
    async with store.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
        # Behind SQLAlchemy's back, as a failure half-way through a driver call would leave it.
        await driver.execute("BEGIN")
        await driver.execute("INSERT INTO telegram_users (telegram_id, failed_starts, created_at)"
                             " VALUES (7, 0, '2026-01-01 00:00:00')")
        assert driver.in_transaction
    assert await users(store) == 0
    # Every pooled connection is usable: none is stuck in the abandoned transaction.
    for telegram_id in range(10, 20):
        async with store.write(idempotent=True) as session:
            session.add(TelegramUser(telegram_id=telegram_id, failed_starts=0,
                                     created_at=utcnow()))
    assert await users(store) == 10


async def test_a_committed_connection_goes_back_without_a_rollback(sqlite_store):
    store = sqlite_store
    calls: list[str] = []
    async with store.engine.connect() as connection:
        raw = await connection.get_raw_connection()
        driver = raw.driver_connection
    real_execute, real_rollback = driver.execute, driver.rollback

    async def execute(sql, *args):
        calls.append(sql.split()[0])
        return await real_execute(sql, *args)

    async def rollback():
        calls.append("ROLLBACK")
        return await real_rollback()

    driver.execute, driver.rollback = execute, rollback  # spy on the driver, outside our code
    try:
        async with store.read() as session:
            await session.execute(select(1))
    finally:
        driver.execute, driver.rollback = real_execute, real_rollback
    assert calls == ["BEGIN"]  # no rollback after the commit


@contextlib.asynccontextmanager
async def trips_to_the_thread(store):
    """The calls queued for aiosqlite's thread on the store's pooled connection (one, opened
    here if need be), by name, while the block runs."""
    async with store.engine.connect() as connection:
        driver = (await connection.get_raw_connection()).driver_connection
    trips: list[str] = []
    real_execute = driver._execute

    async def execute(function, *args, **kwargs):
        trips.append(getattr(function, "__name__", "?"))
        return await real_execute(function, *args, **kwargs)

    driver._execute = execute
    try:
        yield trips
    finally:
        driver._execute = real_execute
    assert not driver.in_transaction


async def test_a_statement_is_one_trip_to_the_driver_thread(sqlite_store):
    store = sqlite_store
    async with trips_to_the_thread(store) as trips:
        async with store.write(idempotent=True) as session:
            session.add(TelegramUser(telegram_id=5, failed_starts=0, created_at=utcnow()))
            news = ChatNotification(telegram_id=5, kind="test", created_at=utcnow(),
                                    next_attempt_at=utcnow())
            session.add(news)
            await session.flush()  # INSERTs: SQLAlchemy takes the new row's id from lastrowid
            assert news.id == 1
            updated = await session.execute(
                update(TelegramUser).where(TelegramUser.telegram_id.in_([5, 6]))
                .values(failed_starts=2).execution_options(synchronize_session=False))
            assert updated.rowcount == 1
            trips.clear()
            rows = (await session.execute(
                select(TelegramUser.telegram_id, TelegramUser.failed_starts))).all()
            select_trips = list(trips)
    assert rows == [(5, 2)]
    assert select_trips == ["_execute"]  # cursor, execute, fetch and close in one call
    assert trips == ["_execute", "commit"]


async def test_a_hot_read_is_one_trip_to_the_driver_thread(sqlite_store):
    store = sqlite_store
    async with store.write(idempotent=True) as session:
        session.add(TelegramUser(telegram_id=9, failed_starts=0, created_at=utcnow()))
    async with trips_to_the_thread(store) as trips:
        async with store.read_connection() as connection:
            assert await connection.scalar(select(TelegramUser.telegram_id)) == 9
    assert trips == ["_execute"]  # no BEGIN before it, no COMMIT after it


async def test_a_failing_statement_raises_sqlalchemys_error_and_the_connection_goes_on(
        sqlite_store):
    store = sqlite_store
    async with store.write(idempotent=True) as session:
        session.add(TelegramUser(telegram_id=8, failed_starts=0, created_at=utcnow()))
    with pytest.raises(IntegrityError):
        async with store.write(idempotent=True) as session:
            session.add(TelegramUser(telegram_id=8, failed_starts=0, created_at=utcnow()))
    with pytest.raises(OperationalError):
        async with store.read_connection() as connection:
            await connection.exec_driver_sql("SELECT no_such_column FROM telegram_users")
    assert await users(store) == 1


async def test_writers_of_one_process_take_turns_instead_of_meeting_sqlites_lock(sqlite_store):
    store = sqlite_store

    @event.listens_for(store.engine.sync_engine, "connect")
    def impatient(dbapi_connection, _record):
        # Without a busy handler a writer that meets the lock fails at once ("database is
        # locked"), so only writers that never overlap can all succeed.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    await store.engine.dispose()  # pooled connections are made again, impatient

    async def write(telegram_id: int) -> None:
        async with store.write(idempotent=True) as session:
            session.add(TelegramUser(telegram_id=telegram_id, failed_starts=0,
                                     created_at=utcnow()))
            await session.flush()
            await asyncio.sleep(0.002)  # others get the event loop while the lock is held

    await asyncio.gather(*(write(telegram_id) for telegram_id in range(100, 130)))
    assert await users(store) == 30


async def test_connection_pools_are_sized_by_the_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("TICKETBOT_DATABASE_POOL_SIZE", "3")
    monkeypatch.setenv("TICKETBOT_DATABASE_MAX_OVERFLOW", "2")
    store = await open_configured_store(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/a.db"))
    try:
        pool = store.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == (3, 2)
    finally:
        await store.close()
    monkeypatch.delenv("TICKETBOT_DATABASE_POOL_SIZE")
    monkeypatch.delenv("TICKETBOT_DATABASE_MAX_OVERFLOW")
    store = await open_configured_store(
        Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/b.db"))
    try:
        pool = store.engine.sync_engine.pool
        assert (pool.size(), pool._max_overflow) == POOL["sqlite"]
    finally:
        await store.close()


def test_a_pool_of_no_connections_is_refused():
    with pytest.raises(ValidationError):
        Settings(database_pool_size=0)


async def statements_share_a_transaction(connection) -> bool:
    """txid_current() gives the transaction an id: twice the same one, unless each statement is
    a transaction of its own."""
    first = await connection.scalar(select(func.txid_current()))
    return await connection.scalar(select(func.txid_current())) == first


async def test_reads_on_postgresql_send_no_begin_and_writes_do(postgres_store):
    store = postgres_store
    async with store.read() as session:
        assert not await statements_share_a_transaction(session)
    async with store.read_connection() as connection:
        assert not await statements_share_a_transaction(connection)
    async with store.write(idempotent=True) as session:
        assert await statements_share_a_transaction(session)
    async with store.write_connection() as connection:
        assert await statements_share_a_transaction(connection)


async def test_idempotent_writes_on_postgresql_commit_each_statement_without_begin(
        postgres_store):
    """Each statement of an idempotent write is harmless alone (``Store.idempotent_write``):
    on PostgreSQL each commits by itself, two round trips fewer than BEGIN … COMMIT."""
    def work(connection) -> bool:
        first = connection.scalar(select(func.txid_current()))
        return connection.scalar(select(func.txid_current())) == first

    assert not await postgres_store.idempotent_write(work)


async def test_a_pooled_connection_the_server_ended_is_replaced_unseen(postgres_store):
    # One pooled connection, so that the next checkout is the one whose backend is ended.
    store = Store(TEST_DATABASE_URL, secret="test-secret", pool_size=1, max_overflow=0,
                  **await ensure_postgres_schema(TEST_DATABASE_URL))
    try:
        async with store.read_connection() as connection:
            first = await connection.scalar(select(func.pg_backend_pid()))
        administrator = await asyncpg.connect(TEST_DATABASE_URL.replace("+asyncpg", ""))
        try:
            assert await administrator.fetchval("SELECT pg_terminate_backend($1)", first)
        finally:
            await administrator.close()
        await asyncio.sleep(0.2)  # the loop reads the closed socket
        async with store.read_connection() as connection:
            second = await connection.scalar(select(func.pg_backend_pid()))
        assert second != first
        assert await users(store) == 0
    finally:
        await store.close()


def test_pgbouncer_url_options_turn_off_prepared_statement_caches():
    from storage.db.store import engine_arguments

    url, kwargs, pgbouncer = engine_arguments(
        "postgresql+asyncpg://bot@pool:6432/tickets?pgbouncer=true", {})
    assert pgbouncer and "pgbouncer" not in url.query
    assert url.query["prepared_statement_cache_size"] == "0"
    assert kwargs["connect_args"]["statement_cache_size"] == 0
    names = {kwargs["connect_args"]["prepared_statement_name_func"]() for _ in range(3)}
    assert len(names) == 3  # unique: never one another client left on a server connection
    url, kwargs, pgbouncer = engine_arguments(
        "postgresql+asyncpg://bot@db/tickets?statement_cache_size=0", {"pool_size": 4})
    assert not pgbouncer and kwargs == {"pool_size": 4,
                                        "connect_args": {"statement_cache_size": 0}}
    url, kwargs, pgbouncer = engine_arguments("sqlite+aiosqlite:///x.db", {})
    assert not pgbouncer and kwargs == {}


# --- statements on the loop (storage/db/sqlite_driver.py) --------------------------------------


async def test_short_statements_run_on_the_loops_thread_and_the_rest_on_aiosqlites(
        sqlite_store):
    store = sqlite_store
    threads: list[int] = []

    @event.listens_for(store.engine.sync_engine, "connect")
    def note_threads(dbapi_connection, _record):
        # A function SQLite calls from the thread the statement runs on.
        dbapi_connection.driver_connection._conn.create_function(
            "thread_of", 0, threading.get_ident)

    await store.engine.dispose()
    loop_thread = threading.get_ident()

    async def statement_threads() -> tuple[int, int]:
        async with store.read_connection() as connection:
            read = await connection.scalar(text("SELECT thread_of()"))
        async with store.write(idempotent=True) as session:
            written = await session.scalar(text("SELECT thread_of()"))
            session.add(TelegramUser(telegram_id=len(threads) + 1, failed_starts=0,
                                     created_at=utcnow()))
        threads.append(read)
        return read, written

    assert loop_thread not in await statement_threads()
    with store.short_statements():
        assert await statement_threads() == (loop_thread, loop_thread)
        with store.long_statements():  # a report inside a reply
            assert loop_thread not in await statement_threads()
    assert await users(store) == 3


async def test_a_write_on_the_loop_does_not_hold_the_loop_while_another_process_writes(
        sqlite_store, tmp_path):
    """Another process (an import, a second bot) holds SQLite's write lock for a while: a write
    begun on the loop waits for it on aiosqlite's thread, and the loop serves others meanwhile."""
    store = sqlite_store
    database = store.engine.url.database
    locked, release = threading.Event(), threading.Event()

    def other_process() -> None:
        other = sqlite3.connect(database, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("INSERT INTO telegram_users (telegram_id, failed_starts, created_at)"
                          " VALUES (77, 0, '2026-01-01 00:00:00')")
            locked.set()
            release.wait(10)
            other.execute("COMMIT")
        finally:
            other.close()

    holder = asyncio.create_task(asyncio.to_thread(other_process))
    await asyncio.to_thread(locked.wait, 10)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    beating = asyncio.create_task(ticker())
    with store.short_statements():
        writing = asyncio.create_task(_add_user(store, 78))
        await asyncio.sleep(0.3)
        assert not writing.done()  # waiting for the other's lock…
        assert ticks >= 10  # …without holding the loop
        release.set()
        await asyncio.wait_for(writing, 10)
    beating.cancel()
    await holder
    assert await users(store) == 2


async def _add_user(store: Store, telegram_id: int) -> None:
    async with store.write(idempotent=True) as session:
        session.add(TelegramUser(telegram_id=telegram_id, failed_starts=0, created_at=utcnow()))


async def test_emptying_the_wal_waits_on_the_thread_even_from_a_reply(sqlite_store):
    """``PRAGMA wal_checkpoint(TRUNCATE)`` waits for readers (after /forgetme): never on the
    loop, even inside a reply's ``short_statements``."""
    store = sqlite_store
    async with trips_to_the_thread(store) as trips:
        with store.short_statements():
            await store.truncate_wal()
            async with store.read_connection() as connection:
                await connection.scalar(select(1))
    assert trips == ["_execute"]  # the checkpoint, not the read after it
