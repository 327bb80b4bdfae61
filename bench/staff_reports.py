"""Staff reports on a large event: the time to answer ``/stats`` (the figures read from the
store, then the chart drawn) and to export every ticket as CSV through the HTTP API's streamed
route (``GET /api/events/{event}/tickets.csv``), with the process's peak memory before and
after the export, which must not grow with the event.

The event is seeded with bulk inserts (not the importer: a million tickets through it take
minutes, and its speed is ``bench/import_speed.py``'s business): ``--tickets`` tickets in
orders of three, a mix of states, a few used, and a personalisation audit entry for each
completed ticket spread over thirty days::

    .venv/bin/python -m bench.staff_reports --tickets 1000000
    .venv/bin/python -m bench.staff_reports --tickets 1000000 \\
        --database postgresql+asyncpg://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import resource
import time
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import insert, text, update

from bench.store import CACHE, _postgres, remove_sqlite_files, url_of
from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from conversations.event_reports import stats_caption, stats_chart
from locales import translator
from storage.db.store import open_store
from storage.models import ActorKind, AuditEntry, Event, Order, Ticket, TicketState
from storage.reads import event_report
from storage.services import reminders

EVENT_ID = "bench-fest"
DATABASE = "ticketbot_bench_staff_reports"
TOKEN = "bench-token"
CHUNK = 20_000
STATES = (TicketState.TO_ASSIGN, TicketState.COMPLETED, TicketState.COMPLETED,
          TicketState.PENDING, TicketState.COMPLETED, TicketState.ON_RESALE)


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def seed(store, tickets: int) -> None:
    now = dt.datetime(2027, 6, 1, 10, tzinfo=dt.UTC)
    async with store.write() as session:
        session.add(Event(id=EVENT_ID, name={"fr": "Festival — samedi", "en": "Festival — Sat"},
                          starts_at=dt.datetime(2027, 7, 17, 12, tzinfo=dt.UTC),
                          timezone="Europe/Paris", venue_name="Parc", venue_city="Nantes",
                          currency="EUR", personalisation_enabled=True,
                          resale_enabled=True, exchange_enabled=False, exchange_targets=[]))
    orders = (tickets + 2) // 3
    async with store.engine.begin() as connection:
        for start in range(0, orders, CHUNK):
            stop = min(orders, start + CHUNK)
            await connection.execute(insert(Order), [
                {"id": n + 1, "number": f"B-{n:07d}", "buyer_name": "Zoé Lefèvre",
                 "buyer_email": f"b{n}@example.org", "language": "fr", "created_at": now,
                 "search_key": f"b-{n:07d}"} for n in range(start, stop)])
        for start in range(0, tickets, CHUNK):
            stop = min(tickets, start + CHUNK)
            rows, audits = [], []
            for n in range(start, stop):
                state = STATES[n % len(STATES)]
                named = state in (TicketState.COMPLETED, TicketState.ON_RESALE,
                                  TicketState.PENDING)
                rows.append({
                    "id": n + 1, "ref": f"T-{n:08d}", "order_id": n // 3 + 1,
                    "event_id": EVENT_ID, "category": "Pass samedi", "price": 89,
                    "state": state, "holder_name": f"Anaïs Çelik {n}" if named else None,
                    "name_key": f"anais celik {n}" if named else None,
                    "barcode": f"{n:016d}", "version": 1, "updated_at": now,
                    "used_at": now if n % 50 == 4 else None, "search_key": f"t-{n:08d}"})
                if state is TicketState.COMPLETED:
                    audits.append({"at": now + dt.timedelta(days=n % 30),
                                   "actor_kind": ActorKind.BUYER, "action": "claimed_for_self",
                                   "ticket_id": n + 1, "order_id": n // 3 + 1, "details": {}})
            await connection.execute(insert(Ticket), rows)
            await connection.execute(insert(AuditEntry), audits)
        # Statistics, as a live store has them (PostgreSQL's autovacuum would in a while).
        await connection.execute(text("ANALYZE"))


async def reminder_rounds(store) -> None:
    """The background worker's reminder look, on this event: once when the seven-day
    reminder falls due for every order with tickets to assign (their buyers never opened the
    bot: e-mails), then once a minute later, when nothing is due."""
    deadline = dt.datetime(2027, 7, 10, 10, tzinfo=dt.UTC)
    async with store.write() as session:
        await session.execute(update(Event).where(Event.id == EVENT_ID).values(
            personalisation_deadline=deadline))
    now = deadline - dt.timedelta(days=7)
    for label in ("due", "nothing due"):
        started = time.perf_counter()
        queued = await reminders.queue_due_reminders(store, now)
        print(f"  reminder round ({label}): {queued:,} reminders queued in "
              f"{time.perf_counter() - started:.2f} s")
        now += dt.timedelta(minutes=1)


async def measure(url: str, tickets: int) -> None:
    print(f"{tickets:,} tickets on {url.split(':')[0]}")
    store = await open_store(url, secret="bench-secret")
    try:
        started = time.perf_counter()
        await seed(store, tickets)
        print(f"  seeded in {time.perf_counter() - started:.1f} s")
        t = translator("fr")
        for attempt in (1, 2):
            started = time.perf_counter()
            figures = await event_report.event_figures(store, 1, EVENT_ID)
            read = time.perf_counter() - started
            picture = await asyncio.to_thread(stats_chart, figures, t)
            total = time.perf_counter() - started
            print(f"  /stats #{attempt}: figures {read:.2f} s, with the chart {total:.2f} s "
                  f"({len(picture) / 1024:.0f} KiB PNG)")
        print("  " + stats_caption(figures, t).replace("\n", " | "))
        await reminder_rounds(store)
        before = peak_mib()
        app = create_api(ApiServices(store=store, api_token=TOKEN, bot_username=lambda: "bot",
                                     metrics=Metrics()))
        async with TestClient(TestServer(app)) as client:
            started = time.perf_counter()
            response = await client.get(f"/api/events/{EVENT_ID}/tickets.csv?lang=fr",
                                        headers={"Authorization": f"Bearer {TOKEN}"})
            first = None
            size = lines = 0
            async for piece in response.content.iter_any():
                first = first or time.perf_counter() - started
                size += len(piece)
                lines += piece.count(b"\n")
            took = time.perf_counter() - started
        print(f"  export: {lines - 1:,} rows, {size / 2**20:.0f} MiB in {took:.1f} s "
              f"(first bytes after {first:.2f} s; {(lines - 1) / took:,.0f} rows/s); "
              f"peak RSS {before:.0f} MiB before, {peak_mib():.0f} MiB after")
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--database", default=None,
                        help="a PostgreSQL server's URL (a database of its own is made there "
                             "and dropped after); default SQLite")
    options = parser.parse_args()
    url = options.database
    path: Path | None = None
    if url is None:
        CACHE.mkdir(exist_ok=True)
        path = CACHE / "staff-reports.db"
        remove_sqlite_files(path)
        url = f"sqlite+aiosqlite:///{path}"
    else:
        asyncio.run(_postgres(url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
                              f'CREATE DATABASE "{DATABASE}"', on="postgres"))
        url = url_of(url, DATABASE)
    try:
        asyncio.run(measure(url, options.tickets))
    finally:
        if path is not None:
            remove_sqlite_files(path)
        else:
            asyncio.run(_postgres(url, f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)',
                                  on="postgres"))


if __name__ == "__main__":
    main()
