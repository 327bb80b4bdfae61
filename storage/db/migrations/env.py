"""Alembic environment: runs migrations over the project's async engine."""

import asyncio

from alembic import context
from sqlalchemy import event, pool
from sqlalchemy.ext.asyncio import create_async_engine

from storage.models import Base
from storage.reads.search import search_objects

config = context.config
target_metadata = Base.metadata


def _database_url() -> str:
    return config.attributes.get("database_url") or config.get_main_option("sqlalchemy.url")


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things in place; batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
        # The search indexes are DDL of their own (storage/reads/search.py), unknown to
        # autogenerate.
        include_name=lambda name, type_, parent: not search_objects(name, type_),
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    from storage.db.store import engine_arguments, private_sqlite_file, secure_delete

    url, kwargs, _ = engine_arguments(_database_url(),
                                      dict(config.attributes.get("engine_kwargs", {})))
    private_sqlite_file(url)
    engine = create_async_engine(url, poolclass=pool.NullPool, **kwargs)
    if engine.dialect.name == "sqlite":
        event.listen(engine.sync_engine, "connect",
                     lambda dbapi_connection, _record: secure_delete(dbapi_connection))
    async with engine.connect() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_database_url(), target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_online())
