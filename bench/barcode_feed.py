"""Benchmark of the gate's barcode feed: a scanner pages a whole event through the HTTP route.

An event of ``--orders`` orders of three tickets (333,334 orders: 1,000,002 tickets) is loaded
with the real importer (bench/store.py's loaders; kept for the next runs), the HTTP API runs in
a process of its own, and a client pages ``GET /api/events/{event}/barcodes`` from no cursor to
the end. It prints barcodes per second and the server's resident memory as the pages go by:
flat memory is a peak that does not grow with the pages read.

    .venv/bin/python -m bench.barcode_feed                       # SQLite, 1,000,002 tickets
    .venv/bin/python -m bench.barcode_feed --database postgres   # PostgreSQL (local server)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

import aiohttp

from bench.process import cpu_seconds, memory_kib
from bench.store import (
    EVENT_ID,
    SECRET,
    _connect,
    cached_sqlite,
    migrations_fingerprint,
    preload,
    settle_postgres,
    url_of,
)
from storage.db.store import open_store

TOKEN = "bench-gate-token"
POSTGRES_URL = "postgresql+asyncpg://postgres@127.0.0.1/postgres"
REPO = Path(__file__).resolve().parent.parent


async def postgres_store(url: str, orders: int) -> str:
    """A database of this benchmark's own holding ``orders`` orders, made once and kept (it
    leaves the other benchmark's templates alone)."""
    name = f"ticketbot_gatebench_{orders}_{migrations_fingerprint()}"
    connection = await _connect(url, on="postgres")
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        partial = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1",
                                            name + "_partial")
        if partial:
            await connection.execute(f'DROP DATABASE "{name}_partial" WITH (FORCE)')
        if not exists:
            await connection.execute(f'CREATE DATABASE "{name}_partial"')
    finally:
        await connection.close()
    if not exists:
        print(f"pre-loading {orders:,} orders into PostgreSQL database {name}", flush=True)
        store = await open_store(url_of(url, name + "_partial"), secret=SECRET)
        try:
            await preload(store, orders)
        finally:
            await store.close()
        await settle_postgres(url_of(url, name + "_partial"))
        connection = await _connect(url, on="postgres")
        try:
            await connection.execute(f'ALTER DATABASE "{name}_partial" RENAME TO "{name}"')
        finally:
            await connection.close()
    return url_of(url, name)


async def serve(url: str, port: int) -> None:
    """The HTTP API alone, as ``ticketbot run`` serves it, on ``port``."""
    from aiohttp import web

    from bot.http.app import create_api
    from bot.http.kernel import ApiServices
    from bot.metrics import Metrics
    from storage.db.store import Store

    store = Store(url, secret=SECRET)
    app = create_api(ApiServices(store=store, api_token=None, bot_username=lambda: "bench",
                                 metrics=Metrics(), gate_tokens=(TOKEN,)))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    print("ready", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
        await store.close()


async def page_through(port: int, pid: int, limit: int) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"http://127.0.0.1:{port}/api/events/{EVENT_ID}/barcodes?limit={limit}"
    barcodes = pages = 0
    cursor = None
    samples = []
    cpu_before = cpu_seconds(pid)
    started = time.monotonic()
    async with aiohttp.ClientSession(headers=headers) as client:
        while True:
            url = base + (f"&since={cursor}" if cursor is not None else "")
            async with client.get(url) as response:
                assert response.status == 200, await response.text()
                page = await response.json()
            barcodes += len(page["valid"])
            pages += 1
            cursor = page["cursor"]
            if pages % 10 == 1:
                samples.append((barcodes, memory_kib(pid)["VmRSS"]))
            if not page["more"]:
                break
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_before
    memory = memory_kib(pid)
    print(f"{barcodes:,} valid barcodes in {pages:,} pages of {limit:,} in {elapsed:.1f} s: "
          f"{barcodes / elapsed:,.0f} barcodes/s; server CPU {cpu:.1f} s "
          f"({cpu / barcodes * 1e6:.1f} µs per barcode)")
    print("server resident memory while paging (barcodes read: MiB): " + ", ".join(
        f"{read:,}: {rss / 1024:.0f}" for read, rss in samples[:: max(1, len(samples) // 8)]))
    print(f"server peak resident memory {memory['VmHWM'] / 1024:.0f} MiB, "
          f"now {memory['VmRSS'] / 1024:.0f} MiB; final cursor {cursor}")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--orders", type=int, default=333_334, help="three tickets each")
    parser.add_argument("--limit", type=int, default=10_000, help="barcodes per page")
    parser.add_argument("--postgres-url", default=POSTGRES_URL)
    parser.add_argument("--port", type=int, default=18_771)
    parser.add_argument("--serve", help=argparse.SUPPRESS)  # the server process: its URL
    args = parser.parse_args()
    if args.serve:
        await serve(args.serve, args.port)
        return
    if args.database == "sqlite":
        url = f"sqlite+aiosqlite:///{await cached_sqlite(args.orders)}"
    else:
        url = await postgres_store(args.postgres_url, args.orders)
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.barcode_feed", "--serve", url, "--port", str(args.port),
        stdout=asyncio.subprocess.PIPE, cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert server.stdout is not None
        line = await asyncio.wait_for(server.stdout.readline(), 60)
        assert line.strip() == b"ready", line
        print(f"{args.database}: {url.rsplit('/', 1)[-1]}")
        await page_through(args.port, server.pid, args.limit)
    finally:
        server.terminate()
        await server.wait()


if __name__ == "__main__":
    asyncio.run(main())
