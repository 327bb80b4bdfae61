"""``ticketbot demo``: the real bot, offline, chatted with in the terminal.

It starts the project's local Bot API emulator on loopback, a fresh SQLite store with the bundled
sample orders, and the very same Application and handlers as ``ticketbot run``; then a person
plays a French buyer, an English buyer, a friend and a support staff member. E-mails are written
as ``.eml`` files and announced in the terminal, so the friend's claim link can be followed.
Pictures and documents the bot sends (a ticket's QR code, PDF and calendar entry, the /stats
chart, the /export CSV) are saved in the demo's ``files/`` folder and their path printed; a
ticket the bot hands to a holder is also drawn with text blocks, its PDF and calendar entry
written to ``tickets/``. The Mini App is served on loopback too, with a local stand-in for
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
from sqlalchemy import select

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
from bot.tools.terminal_chat import TerminalInput, run_terminal_chat
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from bot.webapp.routes import STAND_IN_URL
from conversations.handlers import TEXT_STEPS
from conversations.presentation import ticket_files
from conversations.ticket_show import holder_language
from storage import chat_state, ticket_delivery
from storage.models import Ticket
from storage.services import claim_for_myself, create_order_link, open_link
from storage.services.importing.importer import import_file

SAMPLE_ORDERS = Path(storage.__file__).resolve().parent / "sample_orders.json"
DEMO_USERNAME = "ticketbot_demo_bot"
# A person may open the printed Mini App links a while after the demo started.
DEMO_AUTH_MAX_AGE = 24 * 3600
# How many looks (one per WATCH_INTERVAL while the prompt waits) a picture gets before it is
# taken for one that shows no ticket (a chart).
LOOKS_AT_A_PICTURE = 10
ROTATING_EVENT = "harbour-lights-2027"  # the sample's event with rotating codes
# User 4 of the demo, whose Telegram id is added to the staff ids.
STAFF_USER_ID = 104


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
    """Shows every ticket picture the bot sent as a QR code in the terminal, and writes its PDF
    and calendar entry to a folder."""

    def __init__(self, application, store, users, folder: Path, write) -> None:
        self.application = application
        self.store = store
        self.users = users
        self.folder = folder
        self.write = write
        self.shown: set[tuple[int, int]] = set()
        self.looks: dict[tuple[int, int], int] = {}

    async def settle(self) -> None:
        """Before a prompt: let the background worker deliver what is due now, so that what a
        typed line caused is on screen before the next one is asked for."""
        worker = self.application.bot_data.get("worker")
        if worker is not None:
            await worker.run_once()
        # The worker's own loop may be carrying a change out right now: wait for it a moment.
        for _ in range(40):
            if not await ticket_delivery.pending_changes(self.store):
                break
            await asyncio.sleep(0.05)

    def before(self, read_line):
        async def read(prompt: str) -> str | None:
            await self.settle()
            await self.show_new_tickets()
            return await read_line(prompt)
        return read

    async def show_new_tickets(self) -> None:
        for number, user in enumerate(self.users, start=1):
            for message in user.messages:
                key = (user.id, message.message_id)
                if key in self.shown or not (_is_picture(message) or _opens_live(message)):
                    continue
                card = await ticket_delivery.card_of_message(self.store, user.id,
                                                             message.message_id)
                # A ticket message is recorded just after it is sent: a picture not known as
                # one yet is looked at again, a few times, before it is taken for another one.
                self.looks[key] = self.looks.get(key, 0) + 1
                if card is None and self.looks[key] < LOOKS_AT_A_PICTURE:
                    continue
                self.shown.add(key)
                if card is not None:
                    await self.show(card, number, user.display_name)

    async def show(self, card, number: int, name: str) -> None:
        if card.rotating:
            self.write(
                f"\n🎫 Ticket {card.ref} in the chat of {name} (user {number}), in the name "
                f"of {card.holder_name}: its event has rotating codes, so the chat, the PDF "
                "and the e-mail carry none. Its live code is drawn in the Mini App and redrawn "
                f"every period: open user {number}'s Mini App link, then the ticket.")
            return
        language = holder_language(card)
        self.folder.mkdir(parents=True, exist_ok=True)
        pdf = self.folder / ticket_files.pdf_name(card)
        ics = self.folder / ticket_files.ics_name(card)
        await asyncio.to_thread(pdf.write_bytes, await ticket_files.pdf_file((card,), language))
        await asyncio.to_thread(ics.write_bytes, await ticket_files.ics_file(card, language))
        self.write("\n".join([
            f"\n🎫 Ticket {card.ref} in the chat of {name} (user {number}), "
            f"in the name of {card.holder_name}; its QR code (barcode {card.barcode}):",
            ticket_files.terminal_qr(card.qr_text),
            f"PDF: {pdf}",
            f"Calendar: {ics}",
        ]))


def _is_picture(message) -> bool:
    return bool(message.media) and message.media["type"] == "photo"


def _opens_live(message) -> bool:
    """A rotating ticket's card: a text with a button into the Mini App."""
    return not message.media and any(button.raw.get("web_app") for row in message.buttons
                                     for button in row)


async def hand_over_a_rotating_ticket(store, user) -> None:
    """The English buyer also holds a ticket of the sample's rotating event (Harbour Lights),
    so that the demo shows a live code."""
    order = next(o for o in sample_orders()["orders"]
                 if o["tickets"][0]["event"] == ROTATING_EVENT)
    await open_link(store, user.id, await create_order_link(store, order["number"]))
    async with store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(
            Ticket.ref == order["tickets"][0]["ref"]))
    await claim_for_myself(store, user.id, ticket_id, f"{user.first_name} {user.last_name}")


def waiting_for_text(store):
    """Whether the bot waits for a typed answer (a price, a name, an address) from a user: the
    chat is in a step that takes text."""
    async def waits(user) -> bool:
        step = await chat_state.get_step(store, user.id)
        return step is not None and step.step in TEXT_STEPS
    return waits


def sample_orders() -> dict:
    return json.loads(SAMPLE_ORDERS.read_text(encoding="utf-8"))


def first_order_in(language: str) -> str:
    return next(o["number"] for o in sample_orders()["orders"]
                if o["buyer"].get("language") == language)


async def run_demo(settings: Settings, *, database_url: str | None = None, read_line=None,
                   write=print) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="ticketbot-demo-"))
    emulator = BotApiEmulator(bot_username=DEMO_USERNAME)
    await emulator.start()
    settings = settings.model_copy(update={
        "token": emulator.token, "telegram_api_url": emulator.base_url,
        "bot_username": DEMO_USERNAME, "smtp_url": None, "outbox_dir": str(workdir / "outbox"),
        "database_url": database_url or f"sqlite+aiosqlite:///{workdir / 'demo.db'}",
        "staff_ids": settings.staff_ids | {STAFF_USER_ID},
    })
    store = await open_configured_store(settings)
    await import_file(store, SAMPLE_ORDERS)
    french, english = first_order_in("fr"), first_order_in("en")
    links = {number: await create_order_link(store, number) for number in (french, english)}
    transport = AnnouncingTransport(workdir / "outbox", write)
    application = build_application(settings, store, rate_limit=False, mail_transport=transport)
    terminal = TerminalInput()
    try:
        async with application:
            await start_services(application)
            await application.start()
            await application.updater.start_polling(poll_interval=0, timeout=1)
            users = demo_users(emulator)
            await users[0].start(links[french])
            await users[1].start(links[english])
            runner = await serve_mini_app(store, application, settings)
            base = f"http://127.0.0.1:{runner.addresses[0][1]}"
            # A rotating event's ticket card opens the live code in the Mini App: the local
            # one. The emulator, like Telegram, takes Mini App buttons with https addresses
            # only, so the card names it with https; the terminal prints the working link.
            live_url = base.replace("http://", "https://", 1)
            application.bot_data["worker"].news.webapp_url = live_url
            application.bot_data["worker"].tickets.webapp_url = live_url
            await hand_over_a_rotating_ticket(store, users[1])
            showcase = TicketShowcase(application, store, users, workdir / "tickets", write)
            try:
                with terminal.printing_above():
                    await run_terminal_chat(
                        emulator, users,
                        read_line=showcase.before(read_line or terminal.read_line),
                        write=write, refresh=showcase.show_new_tickets,
                        waits_for_text=waiting_for_text(store), files=workdir / "files",
                        staff_ids=settings.staff_ids,
                        intro="\n".join([intro(french, english, links, workdir),
                                         staff_intro(), mini_app_intro(base, emulator.token,
                                                                       users)]))
            finally:
                await runner.cleanup()
            await application.updater.stop()
            await application.stop()
            await stop_services(application)
    finally:
        await store.close()
        await emulator.stop()
    return 0


def buyer_of(number: str) -> tuple[str, str, str]:
    """The first name, last name and language of the sample order's buyer: the person who
    plays that order's buyer is that buyer (Telegram offers their name for their ticket)."""
    order = next(o for o in sample_orders()["orders"] if o["number"] == number)
    first, _space, last = order["buyer"]["name"].partition(" ")
    return first, last, order["buyer"]["language"]


def demo_users(emulator: BotApiEmulator) -> list:
    """The people a person plays: the buyers of the first French and the first English order,
    a friend, and a support staff member."""
    buyers = [buyer_of(first_order_in(language)) for language in ("fr", "en")]
    return [
        *(emulator.user(user_id, first_name=first, last_name=last, language_code=language)
          for user_id, (first, last, language) in zip((101, 102), buyers, strict=True)),
        emulator.user(103, first_name="Alex", last_name="Durand", language_code="fr"),
        emulator.user(STAFF_USER_ID, first_name="Sam", last_name="Taylor", language_code="en"),
    ]


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
    for number, user in enumerate(users, start=1):
        link = mini_app_link(base, token, user)
        if user.id == STAFF_USER_ID:
            lines.append(f"  staff user {number} ({user.first_name}), for the gate: {link}\n"
                         "    (Scanning at the gate opens a box where a ticket's barcode is typed "
                         "or pasted: the 16 digits under its QR code.)")
        else:
            lines.append(f"  user {number} ({user.first_name}): {link}")
    return "\n".join(lines)


def intro(french: str, english: str, links: dict[str, str], workdir: Path) -> str:
    return "\n".join([
        "Ticketbot demo — the real bot against a local Telegram emulator, offline.",
        f"Data: {workdir} (SQLite store, e-mails in outbox/, pictures and documents the bot "
        "sends in files/, tickets drawn here in tickets/).",
        f"User 1 is {buyer_of(french)[0]}, a French buyer who opened order {french}: "
        f"https://t.me/{DEMO_USERNAME}?start={links[french]}",
        f"User 2 is {buyer_of(english)[0]}, an English buyer who opened order {english}; he "
        "also holds a Harbour Lights ticket, an event with rotating codes: its live code is "
        "only in the Mini App (his link below), redrawn every 15 seconds.",
        "User 3 is Alex, a friend: send them a ticket from a buyer, then `:as 3` and paste the "
        "claim link (or type its /start … line).",
        "Type text to send it, a number to press that button, :say TEXT to send a number or a "
        "text starting with ':' as text, :help for more.",
    ])


def staff_intro() -> str:
    """User 4's commands, with an order, a ticket and an event of the sample data to try."""
    document = sample_orders()
    order = document["orders"][0]
    ticket = order["tickets"][0]
    surname = order["buyer"]["name"].split()[-1]
    return "\n".join([
        f"User 4 is Sam, support staff (his Telegram id {STAFF_USER_ID} is in the staff ids), "
        "in English. As him (:as 4), try:",
        f"  /status {order['number']}   /find {surname}   /history {ticket['ref']}",
        f"  /stats {ticket['event']}   /export {ticket['event']}"
        "   (the chart and the CSV are saved in files/)",
    ])
