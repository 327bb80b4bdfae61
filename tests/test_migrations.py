"""Alembic's migrations produce exactly the schema the models describe."""

from __future__ import annotations

import asyncio

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine

from storage.db.store import (
    _alembic_config,
    database_revisions,
    head_revisions,
    migrate,
    open_store,
)
from storage.models import Base
from storage.reads.search import search_objects
from tests.conftest import empty_database


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
    url, kwargs = await empty_database(tmp_path, "migrated.db")
    await asyncio.to_thread(migrate, url, **kwargs)
    assert await schema_differences(url, **kwargs) == []


async def test_migrating_twice_is_harmless(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
    await asyncio.to_thread(migrate, url)
    await asyncio.to_thread(migrate, url)
    assert await schema_differences(url) == []


def test_the_head_read_from_the_scripts_is_alembic_s():
    """``open_store`` decides whether to migrate by the head it reads from the scripts itself:
    a script added, a branch merged, must move it as it moves Alembic's."""
    scripts = ScriptDirectory.from_config(_alembic_config("sqlite://", {}))
    assert head_revisions() == frozenset(scripts.get_heads())
    assert len(head_revisions()) == 1


async def test_a_store_behind_the_scripts_is_migrated_when_opened(tmp_path):
    url, kwargs = await empty_database(tmp_path, "behind.db")
    await asyncio.to_thread(command.upgrade, _alembic_config(url, kwargs), "0011")
    store = await open_store(url, secret="s", **kwargs)
    try:
        assert await database_revisions(store.engine) == head_revisions() != {"0011"}
    finally:
        await store.close()
    assert await schema_differences(url, **kwargs) == []


async def test_a_new_database_is_migrated_when_opened(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'new.db'}"
    store = await open_store(url, secret="s")
    try:
        assert await database_revisions(store.engine) == head_revisions()
    finally:
        await store.close()
    assert await schema_differences(url) == []
