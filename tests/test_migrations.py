"""Alembic's migrations produce exactly the schema the models describe."""

from __future__ import annotations

import asyncio

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db.store import migrate
from storage.models import Base
from storage.reads.search import search_objects
from tests.conftest import ON_POSTGRES, TEST_DATABASE_URL, ensure_postgres_schema


async def schema_differences(url: str, **engine_kwargs) -> list:
    engine = create_async_engine(url, **engine_kwargs)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda sync: compare_metadata(
                    MigrationContext.configure(sync, opts={
                        "compare_type": True,
                        "include_name": lambda name, type_, parent: not search_objects(name, type_),
                    }), Base.metadata
                )
            )
    finally:
        await engine.dispose()


async def test_migrations_match_the_models(tmp_path):
    if ON_POSTGRES:
        # A schema of its own, so the migration runs from nothing.
        url = TEST_DATABASE_URL
        kwargs = await ensure_postgres_schema(url, suffix="migrations", fresh=True)
    else:
        url, kwargs = f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}", {}
    await asyncio.to_thread(migrate, url, **kwargs)
    assert await schema_differences(url, **kwargs) == []


async def test_migrating_twice_is_harmless(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
    await asyncio.to_thread(migrate, url)
    await asyncio.to_thread(migrate, url)
    assert await schema_differences(url) == []
