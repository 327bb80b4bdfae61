"""``ticketbot demo``: the real bot, offline, chatted with in the terminal.

It starts the project's local Bot API emulator on loopback, a fresh SQLite store with the bundled
sample orders, and the very same Application and handlers as ``ticketbot run``; then a person
plays a French buyer, an English buyer and a friend. E-mails are written as ``.eml`` files and
announced in the terminal, so the friend's claim link can be followed. A ticket the bot sends to
a holder is shown too: its QR code drawn with text blocks, and its PDF and calendar entry
written next to the mails. The Mini App is served on loopback too, with a local stand-in for
Telegram's script: the demo prints one URL per user that opens it in a desktop browser, signed
for that user as Telegram would sign it.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

import storage
from bot.application import (
    build_application,
    open_configured_store,
    start_services,
    stop_services,
)
from bot.mail.transport import EmlDirectoryTransport
from bot.settings import Settings
from bot.tools.emulator import BotApiEmulator
from bot.tools.terminal_chat import run_terminal_chat, stdin_read_line
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from bot.webapp.routes import STAND_IN_URL
from conversations.presentation import ticket_files
from conversations.ticket_show import holder_language
from storage import ticket_delivery
from storage.services import create_order_link
from storage.services.importing.importer import import_file

SAMPLE_ORDERS = Path(storage.__file__).resolve().parent / "sample_orders.json"
DEMO_USERNAME = "ticketbot_demo_bot"
# A person may open the printed Mini App links a while after the demo started.
DEMO_AUTH_MAX_AGE = 24 * 3600


class AnnouncingTransport(EmlDirectoryTransport):
    """Writes mails as .eml files and says so in the terminal."""

    def __init__(self, path: Path, write) -> None:
        super().__init__(path)
        self._announce = write

    async def send(self, message: EmailMessage) -> None:
        await super().send(message)
        self._announce(f"\n📧 E-mail to {message['To']}: “{message['Subject']}” "
                    f"(written to {self.path})\n")


class TicketShowcase:
    """Before each prompt: lets the background worker deliver what is due, then shows every
    ticket picture the bot sent since as a QR code in the terminal, and writes its PDF and
    calendar entry to a folder."""

    def __init__(self, application, store, users, folder: Path, write) -> None:
        self.application = application
        self.store = store
        self.users = users
        self.folder = folder
        self.write = write
        self.shown: set[tuple[int, int]] = set()

    def before(self, read_line):
        async def read(prompt: str) -> str | None:
            await self.show_new_tickets()
            return await read_line(prompt)
        return read

    async def show_new_tickets(self) -> None:
        worker = self.application.bot_data.get("worker")
        if worker is not None:
            await worker.run_once()
        # The worker's own loop may be carrying a change out right now: wait for it a moment.
        for _ in range(40):
            if not await ticket_delivery.pending_changes(self.store):
                break
            await asyncio.sleep(0.05)
        for number, user in enumerate(self.users, start=1):
            for message in user.messages:
                key = (user.id, message.message_id)
                if key in self.shown or not message.media or message.media["type"] != "photo":
                    continue
                self.shown.add(key)
                card = await ticket_delivery.card_of_message(self.store, user.id,
                                                             message.message_id)
                if card is not None:
                    await self.show(card, number, user.display_name)

    async def show(self, card, number: int, name: str) -> None:
        language = holder_language(card)
        self.folder.mkdir(parents=True, exist_ok=True)
        pdf = self.folder / ticket_files.pdf_name(card)
        ics = self.folder / ticket_files.ics_name(card)
        await asyncio.to_thread(pdf.write_bytes, await ticket_files.pdf_file((card,), language))
        await asyncio.to_thread(ics.write_bytes, await ticket_files.ics_file(card, language))
        self.write("\n".join([
            f"\n🎫 Ticket {card.ref} in the chat of {name} (user {number}), "
            f"in the name of {card.holder_name}; its QR code (barcode {card.barcode}):",
            ticket_files.terminal_qr(card.barcode),
            f"PDF: {pdf}",
            f"Calendar: {ics}",
        ]))


def first_order_in(language: str) -> str:
    document = json.loads(SAMPLE_ORDERS.read_text(encoding="utf-8"))
    return next(o["number"] for o in document["orders"] if o["buyer"].get("language") == language)


async def run_demo(settings: Settings, *, database_url: str | None = None, read_line=None,
                   write=print) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ticketbot-demo-"))
    emulator = BotApiEmulator(bot_username=DEMO_USERNAME)
    await emulator.start()
    settings = settings.model_copy(update={
        "token": emulator.token, "telegram_api_url": emulator.base_url,
        "bot_username": DEMO_USERNAME, "smtp_url": None, "outbox_dir": str(workdir / "outbox"),
        "database_url": database_url or f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
    })
    store = await open_configured_store(settings)
    await import_file(store, SAMPLE_ORDERS)
    french, english = first_order_in("fr"), first_order_in("en")
    links = {number: await create_order_link(store, number) for number in (french, english)}
    transport = AnnouncingTransport(workdir / "outbox", write)
    application = build_application(settings, store, rate_limit=False, mail_transport=transport)
    try:
        async with application:
            await start_services(application)
            await application.start()
            await application.updater.start_polling(poll_interval=0, timeout=1)
            users = [
                emulator.user(101, first_name="Camille", last_name="Martin", language_code="fr"),
                emulator.user(102, first_name="Oliver", last_name="Byrne", language_code="en"),
                emulator.user(103, first_name="Alex", last_name="Durand", language_code="fr"),
            ]
            await users[0].start(links[french])
            await users[1].start(links[english])
            runner = await serve_mini_app(store, application, settings)
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            showcase = TicketShowcase(application, store, users, workdir / "tickets", write)
            try:
                await run_terminal_chat(
                    emulator, users, read_line=showcase.before(read_line or stdin_read_line),
                    write=write,
                    intro=intro(french, english, links, workdir) + "\n" + mini_app_intro(
                        base, emulator.token, users))
            finally:
                await runner.cleanup()
            await application.updater.stop()
            await application.stop()
            await stop_services(application)
    finally:
        await store.close()
        await emulator.stop()
    return 0


async def serve_mini_app(store, application, settings: Settings) -> web.AppRunner:
    """The Mini App on loopback only, loading the stand-in for Telegram's script."""
    def wake() -> None:
        worker = application.bot_data.get("worker")
        if worker is not None:
            worker.wake()

    mini = MiniAppServices(store=store, bot_token=settings.token or "",
                           bot_username=lambda: DEMO_USERNAME, max_age=DEMO_AUTH_MAX_AGE,
                           support_contact=settings.support_contact, after_change=wake,
                           telegram_script=STAND_IN_URL, staff_ids=settings.staff_ids)
    root = web.Application()
    root.add_subapp("/app/", create_miniapp(mini))
    runner = web.AppRunner(root, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner


def mini_app_link(base: str, token: str, user) -> str:
    """The page with initData signed for ``user`` in its fragment, where Telegram puts it."""
    init_data = user_init_data(token, user.id, first_name=user.first_name,
                               language_code=user.language_code, auth_date=int(time.time()))
    return f"{base}/app/#tgWebAppData={quote(init_data, safe='')}&tgWebAppVersion=8.0"


def mini_app_intro(base: str, token: str, users) -> str:
    lines = ["The Mini App, in a desktop browser on this machine (links valid for a day):"]
    lines += [f"  user {n} ({user.first_name}): {mini_app_link(base, token, user)}"
              for n, user in enumerate(users, start=1)]
    return "\n".join(lines)


def intro(french: str, english: str, links: dict[str, str], workdir: Path) -> str:
    return "\n".join([
        "Ticketbot demo — the real bot against a local Telegram emulator, offline.",
        f"Data: {workdir} (SQLite store, e-mails in outbox/).",
        f"User 1 is Camille, a French buyer who opened order {french}: "
        f"https://t.me/{DEMO_USERNAME}?start={links[french]}",
        f"User 2 is Oliver, an English buyer who opened order {english}.",
        "User 3 is Alex, a friend: send them a ticket from a buyer, then `:as 3` and type the "
        "/start … line of the claim link.",
        "Type text to send it, a number to press that button, :help for more.",
    ])
