"""Privacy's costs: ``/forgetme`` (one person, one transaction) and the retention's shred of a
whole event (a chunk of tickets per transaction), on a store of N orders of three tickets, a
third of the tickets in a holder's name. Prints the time of each, and tickets shredded per
second::

    .venv/bin/python -m bench.privacy --orders 20000 [--database postgresql+asyncpg://…]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert, select, update

from bench.store import EVENT, EVENT_ID, SECRET, order_entry
from storage.db.store import open_store, utcnow
from storage.keys import name_key
from storage.models import Event, Order, OrderAccess, Ticket, TicketState
from storage.services import privacy
from storage.services.importing.importer import import_document

CHUNK = 5_000
PERSON = 4242


async def load(store, orders: int) -> None:
    """N orders of three tickets; every third ticket completed in a holder's name."""
    for start in range(0, orders, CHUNK):
        entries = [order_entry(f"PRV-{n:07d}", f"Buyer Number{n}", f"buyer{n}@prv.example",
                               [f"T-PRV-{n:07d}-{k}" for k in (1, 2, 3)])
                   for n in range(start, min(orders, start + CHUNK))]
        await import_document(store, {"events": [EVENT], "orders": entries},
                              max_bytes=1 << 30)
    async with store.write() as session:
        rows = (await session.execute(select(Ticket.id).where(Ticket.id % 3 == 0))).scalars()
        for ticket_id in rows:
            holder = f"Holder Person{ticket_id}"
            await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
                state=TicketState.COMPLETED, holder_name=holder, name_key=name_key(holder)))
        first = await session.scalar(select(Order.id).order_by(Order.id).limit(1))
        await session.execute(insert(OrderAccess).values(
            telegram_id=PERSON, order_id=first, granted_at=utcnow()))


async def measure(url: str, orders: int) -> None:
    store = await open_store(url, secret=SECRET)
    try:
        began = time.perf_counter()
        await load(store, orders)
        print(f"loaded {orders:,} orders ({3 * orders:,} tickets) in "
              f"{time.perf_counter() - began:.1f} s")
        began = time.perf_counter()
        erasure = await privacy.forget_person(store, PERSON)
        print(f"/forgetme: {1000 * (time.perf_counter() - began):.0f} ms ({erasure})")
        async with store.write() as session:
            await session.execute(update(Event).where(Event.id == EVENT_ID).values(
                retention_days=0))
        began = time.perf_counter()
        erasure = await privacy.shred_event(store, EVENT_ID)
        shred = time.perf_counter() - began
        began = time.perf_counter()
        await store.truncate_wal()
        wal = time.perf_counter() - began
        assert erasure is not None
        print(f"shred of {3 * orders:,} tickets: {shred:.1f} s "
              f"({3 * orders / shred:,.0f} tickets/s; {erasure}); "
              f"WAL truncated in {1000 * wal:.0f} ms")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database or f"sqlite+aiosqlite:///{Path(directory) / 'privacy.db'}"
        asyncio.run(measure(url, args.orders))


if __name__ == "__main__":
    main()
