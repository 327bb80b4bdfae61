"""``ticketbot demo``: the real bot, offline, chatted with in the terminal.

It starts the project's local Bot API emulator on loopback, a fresh SQLite store with the bundled
sample orders, and the very same Application and handlers as ``ticketbot run``; then a person
plays a French buyer, an English buyer and a friend. E-mails are written as ``.eml`` files and
announced in the terminal, so the friend's claim link can be followed. The Mini App is served on
loopback too, with a local stand-in for Telegram's script: the demo prints one URL per user that
opens it in a desktop browser, signed for that user as Telegram would sign it.
"""

from __future__ import annotations

import json
import tempfile
import time
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import quote

from aiohttp import web

from bot.application import (
    build_application,
    open_configured_store,
    start_services,
    stop_services,
)
from bot.emulator import BotApiEmulator
from bot.mailer import EmlDirectoryTransport
from bot.settings import Settings
from bot.terminal_chat import run_terminal_chat, stdin_read_line
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from bot.webapp.routes import STAND_IN_URL
from storage.importer import import_file
from storage.services import create_order_link

SAMPLE_ORDERS = Path(__file__).resolve().parent.parent / "storage" / "sample_orders.json"
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
            try:
                await run_terminal_chat(
                    emulator, users, read_line=read_line or stdin_read_line, write=write,
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
                           telegram_script=STAND_IN_URL)
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
