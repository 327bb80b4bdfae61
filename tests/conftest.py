"""Shared fixtures: a real store on a SQLite file, or on PostgreSQL when
``TICKETBOT_TEST_DATABASE_URL`` points at one (CI runs the suite both ways)."""

from __future__ import annotations

import asyncio
import copy
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage.db.store import Store, stamp_current
from storage.models import Base

TEST_DATABASE_URL = os.environ.get("TICKETBOT_TEST_DATABASE_URL", "")
ON_POSTGRES = TEST_DATABASE_URL.startswith("postgresql")


def asyncpg_dsn(url: str) -> str:
    """``url`` for a bare asyncpg connection: without SQLAlchemy's driver name and without the
    URL options our store reads (asyncpg would send them to the server as settings)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    query = {key: value for key, value in parsed.query.items()
             if key not in ("pgbouncer", "prepared_statement_cache_size",
                            "statement_cache_size")}
    return (parsed.set(drivername="postgresql", query=query)
            .render_as_string(hide_password=False))


def database_url(tmp_path: Path) -> str:
    return TEST_DATABASE_URL or f"sqlite+aiosqlite:///{tmp_path / 'ticketbot-test.db'}"


def postgres_schema(suffix: str = "") -> str:
    """A schema of this test process's own, so parallel runs on one server do not collide."""
    return f"ticketbot_test_{os.getpid()}{suffix and '_' + suffix}"


async def ensure_postgres_schema(url: str, *, suffix: str = "", fresh: bool = False) -> dict:
    """Create this process's schema; returns the engine arguments that select it."""
    import asyncpg

    schema = postgres_schema(suffix)
    connection = await asyncpg.connect(asyncpg_dsn(url), statement_cache_size=0)
    try:
        if fresh:
            await connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await connection.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    finally:
        await connection.close()
    return {"connect_args": {"server_settings": {"search_path": schema}}}


@pytest.fixture(scope="session", autouse=True)
def drop_postgres_schemas():
    """Leave the shared server as we found it."""
    yield
    if not ON_POSTGRES:
        return
    import asyncio

    import asyncpg

    async def drop() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(TEST_DATABASE_URL),
                                           statement_cache_size=0)
        try:
            for suffix in ("", "migrations"):
                await connection.execute(
                    f'DROP SCHEMA IF EXISTS "{postgres_schema(suffix)}" CASCADE')
        finally:
            await connection.close()

    asyncio.run(drop())


async def empty_database(tmp_path: Path, name: str) -> tuple[str, dict]:
    """A database with nothing in it yet, for a migration to run from nothing: a file on SQLite;
    on PostgreSQL a schema of its own. Returns its URL and the engine arguments it needs."""
    if ON_POSTGRES:
        url = TEST_DATABASE_URL
        return url, await ensure_postgres_schema(url, suffix="migrations", fresh=True)
    return f"sqlite+aiosqlite:///{tmp_path / name}", {}


async def fresh_store(url: str, **kwargs) -> Store:
    """A store on an empty schema (made from the models; migrations are tested on their own)."""
    if url.startswith("postgresql"):
        kwargs = {**await ensure_postgres_schema(url), **kwargs}
    store = Store(url, secret="test-secret", **kwargs)
    async with store.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.exec_driver_sql("DROP TABLE IF EXISTS alembic_version")
        await connection.run_sync(Base.metadata.create_all)
    # Commands under test (import, resale-sold) migrate first: tell them there is nothing to do.
    engine_args = {k: v for k, v in kwargs.items() if k == "connect_args"}
    await asyncio.to_thread(stamp_current, url, **engine_args)
    return store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await fresh_store(database_url(tmp_path))
    try:
        yield store
    finally:
        await store.close()


SAMPLE_EVENTS = [
    {
        "id": "fest-sat",
        "name": "Dreamfest 2027 — Saturday",
        "starts_at": "2027-07-17T14:00:00+02:00",
        "timezone": "Europe/Paris",
        "venue": {"name": "Parc des Expositions", "city": "Nantes"},
        "currency": "EUR",
        "faq_url": "https://dreamfest.example/faq",
        "personalisation": {"enabled": True},
        "resale": {"enabled": True, "min_price": "10.00", "max_price": None},
        "exchange": {"enabled": True, "targets": ["fest-sun"]},
    },
    {
        "id": "fest-sun",
        "name": "Dreamfest 2027 — Sunday",
        "starts_at": "2027-07-18T14:00:00+02:00",
        "timezone": "Europe/Paris",
        "venue": {"name": "Parc des Expositions", "city": "Nantes"},
        "currency": "EUR",
        "personalisation": {"enabled": True},
        "capacity": 5,
    },
]


def sample_document(orders: int = 1, tickets: int = 3, *, language: str = "fr",
                    prefix: str = "DF") -> dict:
    """An import document with ``orders`` orders of ``tickets`` Saturday tickets each."""
    return {
        "events": copy.deepcopy(SAMPLE_EVENTS),
        "orders": [
            {
                "number": f"{prefix}-{100000 + n}",
                "buyer": {"name": "Camille Martin", "email": f"camille{n}@example.org",
                          "language": language},
                "tickets": [
                    {"ref": f"T-{prefix}-{100000 + n}-{k}", "event": "fest-sat",
                     "category": "Pass samedi", "price": "89.00"}
                    for k in range(1, tickets + 1)
                ],
            }
            for n in range(orders)
        ],
    }


@pytest.fixture
async def harness(store: Store):
    """The real bot against the emulator, with a real SMTP server; see tests/harness.py."""
    from tests.harness import close_harness, open_harness

    opened = await open_harness(store)
    try:
        yield opened
    finally:
        await close_harness(opened)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium for a whole module of browser tests (tests/browser.py)."""
    from tests.browser import Browser  # Playwright is loaded only by the tests that use it

    started = Browser()
    started.start()
    try:
        yield started
    finally:
        started.stop()
