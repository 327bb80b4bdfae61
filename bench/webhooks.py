"""The shop's webhooks under load (issue #21): how many messages one sender delivers per second
to a receiver that verifies every signature, and whether replies to users keep their latency
while a dead endpoint holds 10,000 deliveries waiting.

``delivery_rate`` runs a sender (``bot/webhooks.py``) in this process against a receiver in a
process of its own (``python -m bench.webhooks --receiver PORT``), which verifies each message
with the ``standardwebhooks`` library as a shop would. ``bench/run.py --parts webhooks`` runs
it, and runs the buyers twice (``throughput_run``): without webhooks, then with a dead endpoint
(it accepts connections and never answers, so each try waits the full timeout) and
``--webhooks`` deliveries waiting for it before the buyers come.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from bench.mail_speed import free_port
from bench.store import documents, settle_postgres
from bot.webhooks import WebhookSender
from storage.db.store import Store, open_store, utcnow
from storage.models import Order
from storage.services.importing.importer import import_document
from storage.webhook_messages import ListingData
from storage.webhook_outbox import queue_webhook, waiting

SECRET = "whsec_" + base64.b64encode(b"the bench's webhook secret, 32B").decode()
CHUNK = 1_000  # messages written per transaction when queueing


async def queue_messages(store: Store, endpoint: str, count: int, *, orders: int = 1_000,
                         ) -> None:
    """``count`` messages to ``endpoint``, spread over the store's first ``orders`` orders
    (an order's messages go one at a time, so spreading them is what lets them go together)."""
    store.webhook_endpoints = (endpoint,)
    async with store.read() as session:
        order_ids = (await session.scalars(select(Order.id).order_by(Order.id).limit(orders))
                     ).all()
    for start in range(0, count, CHUNK):
        async with store.write(idempotent=True) as session:
            for n in range(start, min(count, start + CHUNK)):
                order_id = order_ids[n % len(order_ids)]
                await queue_webhook(session, "listing.updated", order_id, ListingData(
                    id=n + 1, ticket=f"T-BENCH-{n}", order=str(order_id), event="bench",
                    price="50.00", currency="EUR"), utcnow())
    store.webhook_endpoints = ()


async def dead_endpoint() -> tuple[asyncio.Server, str]:
    """An endpoint that accepts connections and never answers (a hung server, the worst kind
    of dead: each try lasts the sender's whole timeout)."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        with contextlib.suppress(ConnectionError):
            await reader.read()  # until the sender gives up and closes

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}/hooks"


# --- the receiver's process -------------------------------------------------------------------


def serve_receiver(port: int) -> None:
    """A shop's endpoint: verifies every message, answers 204 (400 for a bad signature)."""
    hook = Webhook(SECRET)

    async def receive(request: web.Request) -> web.Response:
        try:
            hook.verify(await request.read(), dict(request.headers))
        except Exception:
            return web.Response(status=400)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/hooks", receive)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


async def start_receiver(port: int) -> asyncio.subprocess.Process:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.webhooks", "--receiver", str(port))
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.close()
        return process
    raise RuntimeError("the bench's webhook receiver did not start")


async def delivery_rate(database_url: str, orders_document: dict[str, Any], *, messages: int,
                        port: int, batch: int = 100) -> dict[str, Any]:
    """Messages delivered per second by one sender, to a receiver verifying each."""
    store = await open_store(database_url, secret="bench-secret")
    receiver = await start_receiver(port)
    endpoint = f"http://127.0.0.1:{port}/hooks"
    sender = WebhookSender(store, (endpoint,), SECRET, batch=batch)
    try:
        await import_document(store, orders_document)
        await queue_messages(store, endpoint, messages)
        if database_url.startswith("postgresql"):
            # As a store in service has them: statistics of its tables (without, PostgreSQL's
            # planner takes a just-filled table for empty and probes it row by row).
            await settle_postgres(database_url)
        started, cpu_before = time.perf_counter(), time.process_time()
        while await waiting(store):
            await sender.send_due()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_before  # the sender's (and the store's) CPU only
    finally:
        await sender.close()
        receiver.terminate()
        await receiver.wait()
        await store.close()
    return {"messages": messages, "elapsed_s": elapsed, "per_s": messages / elapsed,
            "cpu_ms_per_message": 1000 * cpu / messages, "batch": batch}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--receiver", type=int, help="serve the receiver on this port")
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--database-url", help="a store to measure on (default: a new SQLite)")
    args = parser.parse_args()
    if args.receiver:
        serve_receiver(args.receiver)
        return
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(directory) / 'webhooks.db'}"
        result = asyncio.run(delivery_rate(url, next(documents(1_000, chunk=1_000, prefix="WH")),
                                           messages=args.messages, port=free_port()))
    print(f"{result['messages']:,} webhook messages delivered in {result['elapsed_s']:.1f} s: "
          f"{result['per_s']:.0f}/s, sender CPU {result['cpu_ms_per_message']:.2f} ms per message")


if __name__ == "__main__":
    main()
