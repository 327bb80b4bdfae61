"""What one trip to the store costs in CPU, by the way it is made: an indexed one-row read through
``Store.read_rows`` (one greenlet trip) against ``Store.read_connection`` (an ``AsyncConnection``:
five trips and a task to close it) and an ORM session; an idempotent write through
``Store.idempotent_write`` against ``Store.write``; and opening a deep link again
(``Store.write_prepared``: five statements in one transaction, one trip). Statements run as a
reply's do (``Store.short_statements``: on SQLite on the loop's thread).

    .venv/bin/python -m bench.store_trips [--database sqlite|postgres] [--count N]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from sqlalchemy import select

from bench.run import POSTGRES_URL
from bench.store import EVENT, order_entry
from storage import chat_state
from storage.db.store import open_store
from storage.models import TelegramUser
from storage.services import create_order_link, open_link
from storage.services.importing.importer import import_document

USER = 5


async def cpu_per_call(work: Callable[[], Awaitable[object]], count: int) -> float:
    """Microseconds of this process's CPU per call, after a warm-up."""
    for _ in range(count // 10):
        await work()
    started = time.process_time()
    for _ in range(count):
        await work()
    return (time.process_time() - started) * 1e6 / count


async def measure(url: str, count: int) -> None:
    store = await open_store(url)
    read = select(TelegramUser.chosen_language).where(TelegramUser.telegram_id == USER)

    async def through_connection() -> None:
        async with store.read_connection() as connection:
            await connection.execute(read)

    async def through_session() -> None:
        async with store.read() as session:
            await session.execute(read)

    async def step_in_session() -> None:
        async with store.write(idempotent=True) as session:
            await chat_state.end_step(session, USER)

    async def step_in_one_trip() -> None:
        await store.idempotent_write(lambda connection: chat_state.end_step_on(connection, USER))

    # Opened again and again by the same user, as a buyer who comes back by the link does.
    await import_document(store, {"events": [EVENT], "orders": [order_entry(
        "TRIPS-1", "Anna Trips", "anna@trips.example", ["T-TRIPS-1-1"])]}, actor="bench")
    token = await create_order_link(store, "TRIPS-1")

    async def open_order_link() -> None:
        await open_link(store, USER, token, chat_id=USER)

    ways = {
        "read: Store.read_rows": lambda: store.read_rows(read),
        "read: Store.read_connection": through_connection,
        "read: Store.read (ORM session)": through_session,
        "write: Store.idempotent_write": step_in_one_trip,
        "write: Store.write (ORM session)": step_in_session,
        "deep link: open_link": open_order_link,
    }
    try:
        with store.short_statements():
            for name, work in ways.items():
                print(f"{name:<34} {await cpu_per_call(work, count):7.1f} µs of CPU a call")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--count", type=int, default=3000)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = (f"sqlite+aiosqlite:///{Path(folder) / 'trips.db'}" if options.database == "sqlite"
               else options.postgres_url)
        asyncio.run(measure(url, options.count))


if __name__ == "__main__":
    main()
