"""E-mail sender speed: N invitation mails queued by the real services, then sent by
``bot.mail.sender.OutboxSender`` over ``SmtpTransport`` to an aiosmtpd server on loopback that runs
in a process of its own (so that it does not share the sender's CPU)."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from bench.store import EVENT, SECRET, order_entry, remove_sqlite_files
from bot.mail.sender import OutboxSender
from bot.mail.transport import SmtpTransport, parse_smtp_url
from storage import services
from storage.db.store import open_store
from storage.models import Order, Ticket
from storage.services.importing.importer import import_document

BUYER = 40_000_001


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def _wait_for_port(port: int, seconds: float = 20.0) -> None:
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.1)
                continue
            writer.close()
            await writer.wait_closed()
            return


async def queue_invitations(url: str, mails: int) -> None:
    """One order of ``mails`` tickets, each sent to a different friend: ``mails`` mails."""
    store = await open_store(url, secret=SECRET)
    try:
        refs = [f"T-MAIL-{k}" for k in range(mails)]
        await import_document(store, {"events": [EVENT], "orders": [
            order_entry("MAIL-1", "Camille Martin", "camille@mail.example", refs)]})
        token = await services.create_order_link(store, "MAIL-1")
        await services.record_user(store, BUYER, "en")
        await services.open_link(store, BUYER, token)
        async with store.read() as session:
            ticket_ids = list(await session.scalars(
                select(Ticket.id).join(Order).where(Order.number == "MAIL-1").order_by(Ticket.id)))
        for n, ticket_id in enumerate(ticket_ids):
            await services.invite_friend(store, BUYER, ticket_id, f"friend{n}@mail.example")
    finally:
        await store.close()


async def measure_mails(mails: int, workdir: Path) -> dict[str, Any]:
    database = workdir / "mail-bench.db"
    await asyncio.to_thread(remove_sqlite_files, database)
    url = f"sqlite+aiosqlite:///{database}"
    await queue_invitations(url, mails)
    port = free_port()
    server = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}",
        "-c", "aiosmtpd.handlers.Sink",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    store = await open_store(url, secret=SECRET)
    transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}"), timeout=30)
    try:
        await _wait_for_port(port)
        sender = OutboxSender(store, transport, bot_username="ticketbot_bench_bot",
                              sender="tickets@bench.example")
        sent = 0
        started = time.monotonic()
        while sent < mails:
            batch = await sender.send_due()
            if batch == 0:
                break
            sent += batch
        seconds = time.monotonic() - started
    finally:
        await transport.close()
        await store.close()
        server.terminate()
        await server.wait()
        await asyncio.to_thread(remove_sqlite_files, database)
    return {"mails": mails, "sent": sent, "seconds": seconds, "mails_per_s": sent / seconds}
