"""The benchmark's order store: a migrated database holding ``N`` pre-loaded orders of three
tickets (imported in chunks with the real importer, so every row has its production shape:
barcodes, audit entries), plus the simulated buyers' orders and their deep links.

On SQLite the pre-loaded file is kept in ``bench/.cache/`` (keyed by the number of orders and
the migrations) and copied for each run, since a run changes it. On PostgreSQL every run gets a
schema of its own, dropped afterwards.
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

from sqlalchemy import text

from bench.workload import BenchOrder
from storage.database import Store, open_store
from storage.importer import import_document
from storage.services import create_order_links

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
    for path in sorted((HERE.parent / "storage" / "migrations" / "versions").glob("*.py")):
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
    schema: str | None = None
    work_file: Path | None = None
    tokens: dict[str, str] = field(default_factory=dict)
    preload_seconds: float = 0.0

    @property
    def engine_kwargs(self) -> dict[str, Any]:
        if self.schema is None:
            return {}
        return {"connect_args": {"server_settings": {"search_path": self.schema}}}

    async def drop(self) -> None:
        if self.schema is not None:
            await _postgres(self.url, f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        if self.work_file is not None:
            remove_sqlite_files(self.work_file)


def remove_sqlite_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


async def _postgres(url: str, *statements: str) -> None:
    """Run each statement on its own (outside a transaction block, as VACUUM needs)."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        for statement in statements:
            await connection.execute(statement)
    finally:
        await connection.close()


async def settle_postgres(url: str, schema: str) -> None:
    """Leave PostgreSQL nothing to catch up on after a bulk load: vacuum and analyse the
    schema's tables and write the dirty pages out. Otherwise autovacuum and the checkpointer
    would run during the measurement, on the same two cores, after a million-ticket load."""
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = $1", schema)
    finally:
        await connection.close()
    await _postgres(url, *(f'VACUUM (ANALYZE) "{schema}"."{row["tablename"]}"' for row in tables),
                    "CHECKPOINT")


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
        schema = f"ticketbot_bench_{os.getpid()}"
        await _postgres(postgres_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await _postgres(postgres_url, f'CREATE SCHEMA "{schema}"')
        prepared = BenchDatabase(postgres_url, schema=schema)
        store = await open_store(postgres_url, secret=SECRET, **prepared.engine_kwargs)
        if orders:
            log(f"pre-loading {orders:,} orders into PostgreSQL schema {schema}")
            await preload(store, orders, log=log)
    else:
        raise ValueError(f"unknown database {database!r}")
    try:
        prepared.tokens = await add_bench_orders(store, bench_orders)
    finally:
        await store.close()
    if prepared.schema is not None:
        await settle_postgres(postgres_url, prepared.schema)
    prepared.preload_seconds = time.monotonic() - started
    return prepared
