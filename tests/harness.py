"""End-to-end harness: the real Application over real HTTP against the local Bot API emulator,
a real store, and a real SMTP server on loopback receiving the mails."""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller
from telegram.ext import Application

from bot.application import build_application, start_services, stop_services
from bot.settings import Settings
from bot.tools.emulator import BotApiEmulator, EmulatedUser
from storage import services
from storage.db.store import Store
from storage.services.importing.importer import import_document

BOT_USERNAME = "ticketbot_test_bot"


class MailRecorder:
    """An aiosmtpd handler keeping every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.arrived = asyncio.Event()

    async def handle_DATA(self, server, session, envelope) -> str:
        message = email.message_from_bytes(envelope.original_content or envelope.content,
                                           policy=email.policy.default)
        self.messages.append(message)
        self.arrived.set()
        return "250 Message accepted for delivery"


@dataclass
class Harness:
    emulator: BotApiEmulator
    store: Store
    settings: Settings
    mail: MailRecorder
    smtp: Controller
    application: Application | None = None
    extra_applications: list[Application] = field(default_factory=list)

    async def start_bot(self) -> Application:
        application = build_application(self.settings, self.store)
        await application.initialize()
        await start_services(application)
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=1)
        self.application = application
        return application

    async def stop_bot(self) -> None:
        if self.application is None:
            return
        application, self.application = self.application, None
        await application.updater.stop()
        await application.stop()
        await stop_services(application)
        await application.shutdown()

    async def restart_bot(self) -> None:
        await self.stop_bot()
        await self.start_bot()

    def user(self, user_id: int, first_name: str = "Test", last_name: str | None = None,
             language_code: str | None = "en") -> EmulatedUser:
        return self.emulator.user(user_id, first_name=first_name, last_name=last_name,
                                  language_code=language_code)

    async def import_orders(self, document: dict) -> None:
        await import_document(self.store, document)

    async def order_link(self, number: str) -> str:
        return await services.create_order_link(self.store, number)

    async def run_background(self) -> None:
        """Run the worker's jobs now (mails, news, expiry) instead of waiting for its timer."""
        await self.application.bot_data["worker"].run_once()

    async def next_mail(self, within: float = 5.0) -> EmailMessage:
        """The oldest mail not yet taken by a test."""
        async with asyncio.timeout(within):
            while not self.mail.messages:
                self.mail.arrived.clear()
                await self.run_background()
                if not self.mail.messages:
                    await self.mail.arrived.wait()
        return self.mail.messages.pop(0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


async def open_harness(store: Store, *, language: str | None = None,
                       **settings_overrides) -> Harness:
    """The harness, its bot started; ``settings_overrides`` are extra ``Settings`` values."""
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    recorder = MailRecorder()
    port = free_port()
    controller = Controller(recorder, hostname="127.0.0.1", port=port)
    controller.start()
    settings = Settings(
        token=emulator.token, telegram_api_url=emulator.base_url, bot_username=BOT_USERNAME,
        database_url=store.url, smtp_url=f"smtp://127.0.0.1:{port}",
        mail_from="tickets@dreamfest.example", secret="test-secret",
        **settings_overrides,
    )
    harness = Harness(emulator=emulator, store=store, settings=settings, mail=recorder,
                      smtp=controller)
    await harness.start_bot()
    return harness


async def close_harness(harness: Harness) -> None:
    await harness.stop_bot()
    harness.smtp.stop()
    await harness.emulator.stop()
