"""The benchmark's order store: a migrated database holding ``N`` pre-loaded orders of three
tickets (imported in chunks with the real importer, so every row has its production shape:
barcodes, audit entries), plus the simulated buyers' orders and their deep links.

Pre-loading a million tickets takes minutes, so it is done once per size and kept (keyed by the
number of orders and the migrations), and each run gets a copy, since a run changes it: on
SQLite a file in ``bench/.cache/``; on PostgreSQL a template database that each run's database
is created from (``CREATE DATABASE … TEMPLATE``, a file copy), dropped after the run. Besides
the time, this keeps the runs fair: when every million-ticket run followed its own bulk load,
it met a machine still busy or slowed by it, and the thousand-ticket runs did not.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import make_url, text

from bench.workload import BenchOrder
from storage.db.store import Store, open_store
from storage.services import create_order_links
from storage.services.importing.importer import import_document

HERE = Path(__file__).parent
CACHE = HERE / ".cache"
SECRET = "bench-secret"
EVENT_ID = "bench-sat"
PRELOAD_CHUNK = 10_000  # orders per imported document
EVENT = {
    "id": EVENT_ID,
    "name": "Dreamfest 2027 — Saturday",
    "starts_at": "2027-07-17T14:00:00+02:00",
    "timezone": "Europe/Paris",
    "venue": {"name": "Parc des Expositions", "city": "Nantes"},
    "currency": "EUR",
    "faq_url": "https://dreamfest.example/faq",
    "personalisation": {"enabled": True},
    "resale": {"enabled": True, "min_price": "10.00", "max_price": None},
}


def order_entry(number: str, buyer_name: str, email: str, refs: Sequence[str]) -> dict:
    return {
        "number": number,
        "buyer": {"name": buyer_name, "email": email, "language": "en"},
        "tickets": [{"ref": ref, "event": EVENT_ID, "category": "Pass samedi", "price": "89.00"}
                    for ref in refs],
    }


def filler_orders(start: int, stop: int, prefix: str = "PRE") -> list[dict]:
    """Orders nobody in the run touches: the store's bulk."""
    return [order_entry(f"{prefix}-{n:07d}", "Camille Martin", f"buyer{n}@{prefix.lower()}.example",
                        [f"T-{prefix}-{n:07d}-{k}" for k in (1, 2, 3)])
            for n in range(start, stop)]


def documents(count: int, chunk: int = PRELOAD_CHUNK, prefix: str = "PRE") -> Iterator[dict]:
    for start in range(0, count, chunk):
        yield {"events": [EVENT], "orders": filler_orders(start, min(count, start + chunk), prefix)}


def migrations_fingerprint() -> str:
    """Changes whenever a migration does, so a cached file never has an old schema."""
    digest = hashlib.sha256()
    for path in sorted((HERE.parent / "storage" / "db" / "migrations" / "versions").glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


async def preload(store: Store, orders: int, *, log=print) -> None:
    started = time.monotonic()
    done = 0
    for document in documents(orders):
        await import_document(store, document, actor="bench")
        done += len(document["orders"])
        if orders >= 50_000:
            log(f"  pre-loaded {done:,} of {orders:,} orders "
                f"({time.monotonic() - started:.0f} s)")


@dataclass
class BenchDatabase:
    """A database ready for one run; ``drop()`` removes what the run made."""

    url: str
    work_file: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    preload_seconds: float = 0.0

    async def drop(self) -> None:
        if self.url.startswith("postgresql"):
            await _postgres(self.url, f'DROP DATABASE IF EXISTS "{database_of(self.url)}" '
                                      "WITH (FORCE)", on="postgres")
        if self.work_file is not None:
            remove_sqlite_files(self.work_file)


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def database_of(url: str) -> str:
    return make_url(url).database or ""


def url_of(url: str, database: str) -> str:
    return make_url(url).set(database=database).render_as_string(hide_password=False)


async def _connect(url: str, on: str | None = None) -> Any:
    """An asyncpg connection to ``url``'s server, on its database or on ``on``."""
    import asyncpg

    if on is not None:
        url = url_of(url, on)
    return await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))


async def _postgres(url: str, *statements: str, on: str | None = None) -> None:
    """Run each statement on its own (outside a transaction block, as VACUUM and CREATE
    DATABASE need); ``on``: another database of the server than ``url``'s."""
    connection = await _connect(url, on)
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def settle_postgres(url: str) -> None:
    """Leave PostgreSQL nothing to catch up on after a bulk load: vacuum and analyse the
    database's tables and write the dirty pages out. Otherwise autovacuum and the checkpointer
    would run during the measurement, on the same two cores, after a million-ticket load."""
    connection = await _connect(url)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
    finally:
        await connection.close()
    await _postgres(url, *(f'VACUUM (ANALYZE) "{row["tablename"]}"' for row in tables),
                    "CHECKPOINT")


TEMPLATE_PREFIX = "ticketbot_bench_template_"


async def cached_postgres(url: str, orders: int, *, log=print) -> str:
    """The name of the template database holding ``orders`` pre-loaded orders on ``url``'s
    server, made once and kept. Templates of older migrations are dropped."""
    name = f"{TEMPLATE_PREFIX}{orders}_{migrations_fingerprint()}"
    partial = f"{name}_partial"
    connection = await _connect(url, on="postgres")
    try:
        databases = {row["datname"] for row in await connection.fetch(
            "SELECT datname FROM pg_database WHERE datname LIKE $1", TEMPLATE_PREFIX + "%")}
        for stale in databases - {name}:
            if stale.endswith("_partial") or not stale.endswith(migrations_fingerprint()):
                await connection.execute(f'DROP DATABASE "{stale}" WITH (FORCE)')
        if name in databases:
            return name
        log(f"pre-loading {orders:,} orders into PostgreSQL database {name} (kept for the "
            "next runs)")
        await connection.execute(f'CREATE DATABASE "{partial}"')
    finally:
        await connection.close()
    store = await open_store(url_of(url, partial), secret=SECRET)
    try:
        await preload(store, orders, log=log)
    finally:
        await store.close()
    await settle_postgres(url_of(url, partial))
    await _postgres(url, f'ALTER DATABASE "{partial}" RENAME TO "{name}"', on="postgres")
    return name


async def copy_postgres(url: str, template: str, name: str) -> str:
    """A new database ``name`` made from ``template`` (file by file); returns its URL."""
    await _postgres(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)',
                    # FILE_COPY: the files as they are, not every page through the WAL.
                    f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY',
                    on="postgres")
    return url_of(url, name)


async def cached_sqlite(orders: int, *, log=print) -> Path:
    """The pre-loaded SQLite file for ``orders`` orders, made once and kept."""
    path = CACHE / f"preload-{orders}-{migrations_fingerprint()}.db"
    if _ready(path):
        return path
    log(f"pre-loading {orders:,} orders into {path} (kept for the next runs)")
    partial = path.with_suffix(".partial")
    remove_sqlite_files(partial)
    store = await open_store(f"sqlite+aiosqlite:///{partial}", secret=SECRET)
    try:
        await preload(store, orders, log=log)
        async with store.engine.begin() as connection:
            await connection.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    finally:
        await store.close()
    os.replace(partial, path)
    return path


def _ready(path: Path) -> bool:
    path.parent.mkdir(exist_ok=True)
    return path.exists()


async def add_bench_orders(store: Store, orders: Sequence[BenchOrder]) -> dict[str, str]:
    """Import the simulated buyers' orders and make each its deep-link token."""
    entries = [order_entry(o.number, o.buyer_name, f"buyer.{o.index}@bench.example", o.refs)
               for o in orders]
    await import_document(store, {"events": [EVENT], "orders": entries}, actor="bench")
    return await create_order_links(store, [o.number for o in orders])


async def prepare(database: str, orders: int, bench_orders: Sequence[BenchOrder], *,
                  workdir: Path, postgres_url: str, log=print) -> BenchDatabase:
    """A store with ``orders`` pre-loaded orders and the buyers' orders, with their links."""
    started = time.monotonic()
    if database == "sqlite":
        source = await cached_sqlite(orders, log=log)
        work_file = workdir / "ticketbot-bench.db"
        shutil.copyfile(source, work_file)
        prepared = BenchDatabase(f"sqlite+aiosqlite:///{work_file}", work_file=work_file)
        store = Store(prepared.url, secret=SECRET)
    elif database == "postgres":
        template = await cached_postgres(postgres_url, orders, log=log)
        prepared = BenchDatabase(await copy_postgres(postgres_url, template,
                                                     f"ticketbot_bench_run_{os.getpid()}"))
        store = Store(prepared.url, secret=SECRET)
    else:
        raise ValueError(f"unknown database {database!r}")
    try:
        prepared.tokens = await add_bench_orders(store, bench_orders)
    finally:
        await store.close()
    if database == "postgres":
        await settle_postgres(prepared.url)
    prepared.preload_seconds = time.monotonic() - started
    return prepared
