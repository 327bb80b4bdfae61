"""Ticketbot itself, as the benchmark runs it: the real Application from
``bot.application.build_application`` with its services, long polling against the emulator.

Run by the benchmark as ``python -m bench.ticketbot_bot --api-url URL --token TOKEN
--database-url URL``. ``--count-queries`` counts the SQL statements the store executes
(SQLAlchemy's ``before_cursor_execute``), from the start of the measured phase.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from sqlalchemy import event

from bench.serving import common_arguments, serve
from bot.application import (
    build_application,
    open_configured_store,
    start_services,
    stop_services,
)
from bot.http.server import BotServer
from bot.process_memory import limit_malloc_arenas, settle_heap
from bot.settings import Settings

_LITERALS = re.compile(r"\(\s*(?:\?|\$\d+)(?:\s*,\s*(?:\?|\$\d+))*\s*\)")


class QueryCounter:
    """Counts the statements sent to the database, by their text (placeholders folded), and
    the transactions begun (SQLite's explicit ``BEGIN`` is counted there, not as a statement,
    so that both databases count alike)."""

    def __init__(self, engine: Any) -> None:
        self.statements: Counter[str] = Counter()
        self.transactions = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._count)
        event.listen(engine.sync_engine, "begin", self._begin)

    def _count(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if statement.lstrip()[:5].upper() != "BEGIN":
            self.statements[_LITERALS.sub("(…)", " ".join(statement.split()))] += 1

    def _begin(self, conn: Any) -> None:
        self.transactions += 1

    def restart(self) -> None:
        self.statements.clear()
        self.transactions = 0

    def stats(self) -> dict[str, Any]:
        return {
            "statements": sum(self.statements.values()),
            "transactions": self.transactions,
            "top": [{"count": n, "sql": s[:300]} for s, n in self.statements.most_common(25)],
        }


async def run(args: argparse.Namespace) -> None:
    webhook = {}
    if args.webhook_port:
        webhook = {"http_port": args.webhook_port, "http_host": "127.0.0.1",
                   "webhook_url": f"http://127.0.0.1:{args.webhook_port}/telegram"}
    settings = Settings(
        token=args.token, telegram_api_url=args.api_url, bot_username=args.bot_username,
        database_url=args.database_url, secret=args.secret, outbox_dir=str(args.outbox),
        smtp_url=args.smtp_url, shop_webhook_url=args.shop_webhook_url or (),
        shop_webhook_secret=args.shop_webhook_secret, **webhook,
    )
    store = await open_configured_store(settings)
    counter = QueryCounter(store.engine) if args.count_queries else None
    # As shipped: replies unthrottled, news paced by the store's budget (bot/telegram_retry.py).
    application = build_application(settings, store, webhook=bool(webhook))
    server = BotServer(settings, store, application) if webhook else None
    try:
        await serve(
            application, args, after_initialize=start_services, before_shutdown=stop_services,
            # As ticketbot run does once it serves (bot/http/server.py).
            when_serving=settle_heap,
            on_mark=counter.restart if counter else None,
            stats=(lambda: {"queries": counter.stats()}) if counter else None,
            webhook=server,
        )
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    common_arguments(parser)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bot-username", default="ticketbot_bench_bot")
    parser.add_argument("--secret", default="bench-secret")
    parser.add_argument("--outbox", type=Path, default=Path("bench/.cache/outbox"),
                        help="where invitation e-mails are written as .eml files")
    parser.add_argument("--smtp-url", help="send e-mails over SMTP instead")
    parser.add_argument("--count-queries", action="store_true")
    parser.add_argument("--shop-webhook-url", help="send the shop's webhooks there")
    parser.add_argument("--shop-webhook-secret")
    args = parser.parse_args()
    limit_malloc_arenas()  # as ticketbot run does (bot/cli.py)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
