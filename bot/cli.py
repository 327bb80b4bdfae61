"""The ``ticketbot`` command: run the bot, import orders, print a buyer's link, or the demo."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from bot.process_memory import limit_malloc_arenas
from bot.settings import Settings

log = logging.getLogger("ticketbot")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ticketbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="run the bot (long polling, or webhook) and its HTTP API")
    importing = commands.add_parser("import", help="load events and orders from a JSON file")
    importing.add_argument("file", type=Path)
    linking = commands.add_parser("link", help="print the buyer's deep link of an order")
    linking.add_argument("order_number")
    sold = commands.add_parser("resale-sold", help="complete a resale the market reports sold")
    sold.add_argument("listing_id", type=int)
    sold.add_argument("--price", help="the price it sold for (default: the listed price)")
    shredding = commands.add_parser(
        "shred", help="remove an event's personal data now (as its retention would)")
    shredding.add_argument("event_id")
    shredding.add_argument("--dry-run", action="store_true",
                           help="only say what would be removed")
    demo = commands.add_parser("demo", help="chat with the bot in the terminal, offline")
    demo.add_argument("--database", help="database URL (default: a fresh SQLite file)")
    args = parser.parse_args(argv)
    # The demo shares the terminal with the chat: only problems are worth printing there.
    level = logging.WARNING if args.command == "demo" else logging.INFO
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings()
    # Before asyncio.run: the SQLite and worker threads it starts each take an arena otherwise.
    limit_malloc_arenas()
    try:
        return asyncio.run(COMMANDS[args.command](settings, args))
    except KeyboardInterrupt:
        return 130


async def run_bot(settings: Settings, args: argparse.Namespace) -> int:
    from bot.http.server import serve

    if not settings.secret:
        # Whoever reads the database (a backup, a copy) could then forge every buyer's link.
        log.warning("TICKETBOT_SECRET is not set: the link secret is kept in the database, "
                    "next to the links it protects; set TICKETBOT_SECRET (docs/privacy.md)")
    if not settings.token:
        print("TICKETBOT_TOKEN is not set.", file=sys.stderr)
        return 2
    refusal = await _rotating_needs_mini_app(settings)
    if refusal is not None:
        print(refusal, file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # Ctrl+C or a service manager's SIGTERM: stop taking updates, finish, close cleanly.
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, stop.set)
    log.info("bot starting; press Ctrl+C to stop")
    await serve(settings, stop)
    return 0


async def _rotating_needs_mini_app(settings: Settings) -> str | None:
    """Why the bot must not start, read from the configured store (see ``startup_refusal``)."""
    if settings.webapp_url:
        return None
    from bot.application import open_configured_store

    store = await open_configured_store(settings)
    try:
        return await startup_refusal(settings, store)
    finally:
        await store.close()


async def startup_refusal(settings: Settings, store) -> str | None:
    """A rotating event's holders see their code only in the Mini App, so without
    ``TICKETBOT_WEBAPP_URL`` they could not get in: the reason not to start, or None."""
    from storage.services.entry_keys import rotating_event_ids

    if settings.webapp_url:
        return None
    rotating = await rotating_event_ids(store)
    if not rotating:
        return None
    return (f"Not starting: {', '.join(rotating)} show rotating entry codes, which holders see "
            "only in the Mini App, and TICKETBOT_WEBAPP_URL is not set. Set it to the public "
            "HTTPS address of this bot's HTTP server (e.g. https://tickets.example.org), or "
            'import those events with "entry": {"code": "static"}.')


async def import_orders(settings: Settings, args: argparse.Namespace) -> int:
    from bot.application import open_configured_store
    from bot.import_progress import ImportProgressDisplay
    from storage.services.importing.importer import ImportRejected, import_file

    store = await open_configured_store(settings)
    progress = ImportProgressDisplay()
    try:
        # A festival's file holds a million tickets: no list of its order numbers.
        report = await import_file(store, args.file, progress=progress, list_orders=False)
    except ImportRejected as rejected:
        progress.close()
        print(f"{args.file}: nothing imported.", file=sys.stderr)
        for problem in rejected.problems:
            print(f"  {problem}", file=sys.stderr)
        if rejected.omitted:
            print(f"  … and {rejected.omitted:,} more problems", file=sys.stderr)
        return 1
    finally:
        progress.close()
        await store.close()
    print(f"{args.file}: {report.orders_created} orders and {report.tickets_created} tickets "
          f"created, {report.events_created} events created, {report.events_updated} updated.")
    return 0


async def print_link(settings: Settings, args: argparse.Namespace) -> int:
    from bot.application import open_configured_store
    from storage.errors import Refusal
    from storage.services import create_order_link

    username = settings.bot_username or await ask_bot_username(settings)
    store = await open_configured_store(settings)
    try:
        token = await create_order_link(store, args.order_number)
    except Refusal:
        print(f"No order {args.order_number}.", file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"https://t.me/{username}?start={token}")
    return 0


async def ask_bot_username(settings: Settings) -> str:
    """The bot's username from Telegram (``getMe``), when not configured."""
    from telegram import Bot

    if not settings.token:
        raise SystemExit("Set TICKETBOT_BOT_USERNAME, or TICKETBOT_TOKEN to ask Telegram.")
    async with Bot(settings.token, base_url=settings.telegram_api_url) as bot:
        return bot.username


async def complete_resale(settings: Settings, args: argparse.Namespace) -> int:
    from decimal import Decimal, InvalidOperation

    from bot.application import open_configured_store
    from storage.errors import Refusal
    from storage.services.resale import complete_sale

    try:
        price = Decimal(args.price) if args.price is not None else None
    except InvalidOperation:
        print(f"Not a price: {args.price!r} (write it like 45.00).", file=sys.stderr)
        return 2
    store = await open_configured_store(settings)
    try:
        sale = await complete_sale(store, args.listing_id, price=price)
    except Refusal as refusal:
        print(f"Listing {args.listing_id}: {refusal.message.format(**refusal.params)}",
              file=sys.stderr)
        return 1
    finally:
        await store.close()
    print(f"Listing {sale.listing_id}: ticket {sale.ticket_ref} sold for {sale.price} "
          f"{sale.currency}; the buyer will be told in chat.")
    return 0


async def shred_event(settings: Settings, args: argparse.Namespace) -> int:
    """``ticketbot shred EVENT [--dry-run]``: say what the event's shred removes, and do it
    unless it is a dry run (docs/privacy.md)."""
    from bot.application import open_configured_store
    from storage.services import privacy

    store = await open_configured_store(settings)
    try:
        plan = await privacy.shred_plan(store, args.event_id)
        if plan is None:
            print(f"No event {args.event_id}.", file=sys.stderr)
            return 1
        print(f"{plan.event_id}: {plan.named_tickets} named tickets, {plan.orders} orders and "
              f"{plan.invitations} invitations hold personal data; retention ends "
              f"{plan.due_at:%Y-%m-%d %H:%M} UTC"
              + (f", shredded {plan.shredded_at:%Y-%m-%d %H:%M} UTC." if plan.shredded_at
                 else "."))
        if args.dry_run:
            print("Dry run: nothing removed.")
            return 0
        erasure = await privacy.shred_event(store, args.event_id, actor="command")
        await store.truncate_wal()
    finally:
        await store.close()
    if erasure is None:
        print(f"{args.event_id} was shredded already; its data removed again where any was left.")
        return 0
    print(f"{args.event_id}: removed the personal data of {erasure.tickets_blanked} tickets, "
          f"{erasure.orders} orders, {erasure.invitations} invitations, "
          f"{erasure.history_entries} history entries and {erasure.messages} messages.")
    return 0


async def run_demo(settings: Settings, args: argparse.Namespace) -> int:
    from bot.tools.demo import run_demo as demo

    return await demo(settings, database_url=args.database)


COMMANDS = {
    "run": run_bot,
    "import": import_orders,
    "link": print_link,
    "resale-sold": complete_resale,
    "shred": shred_event,
    "demo": run_demo,
}


if __name__ == "__main__":
    sys.exit(main())
