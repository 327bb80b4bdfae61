"""The store's connection handling on SQLite, where every trip to aiosqlite's thread counts: a
transaction is begun with one driver call, and a connection is rolled back on its return to the
pool only if a transaction is still open on it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from storage.database import utcnow
from storage.models import TelegramUser


@pytest.fixture
def sqlite_store(store):
    if not store.is_sqlite:
        pytest.skip("SQLite's connection handling")
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
        async with store.read_connection() as connection:
            await connection.execute(select(1))
    finally:
        driver.execute, driver.rollback = real_execute, real_rollback
    assert calls == ["BEGIN"]  # no rollback after the commit
