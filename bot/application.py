"""The one place that wires Ticketbot together: store, Telegram application, mailer, worker."""

from __future__ import annotations

import logging

from telegram.error import TelegramError
from telegram.ext import Application, ApplicationBuilder

from bot.aiohttp_request import AiohttpRequest
from bot.background import BackgroundWorker
from bot.inbox import Delivery, DurableBot, InboxKeeper, InboxProcessor, install
from bot.mail.sender import OutboxSender
from bot.mail.transport import MailTransport, make_transport
from bot.metrics import Metrics, TimedUpdateProcessor
from bot.settings import Settings
from bot.telegram_retry import ChatFloodControl
from bot.webhooks import WebhookSender
from conversations.handlers import register
from conversations.menu import set_command_menu
from storage.db.store import Store, open_store

log = logging.getLogger(__name__)


async def open_configured_store(settings: Settings) -> Store:
    """Migrate the configured database and open the store on it."""
    store = await open_store(settings.database_url, secret=settings.secret,
                             claim_link_ttl=settings.claim_link_ttl,
                             pool_size=settings.database_pool_size,
                             max_overflow=settings.database_max_overflow)
    store.webhook_endpoints = settings.shop_webhook_url
    return store


def build_application(settings: Settings, store: Store, *, rate_limit: bool = True,
                      mail_transport: MailTransport | None = None,
                      webhook: bool = False) -> Application:
    """The python-telegram-bot Application with every handler. Our services (worker, mailer)
    are started by ``start_services`` in every mode, since PTB skips post_init in some.
    ``mail_transport`` overrides the one the settings describe (SMTP, else .eml files).
    With ``webhook`` there is no updater: our server puts Telegram's updates on the queue."""
    if not settings.token:
        raise ValueError("TICKETBOT_TOKEN is not set")
    # httpx logs every request URL at INFO, and Bot API URLs contain the bot token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    delivery = Delivery(store)
    # Every update is stored in the inbox before Telegram is told it arrived (bot/inbox.py).
    bot = DurableBot(
        delivery, settings.token, base_url=settings.telegram_api_url,
        # aiohttp rather than PTB's default httpx: a third of the CPU per API call.
        request=AiohttpRequest(connection_pool_size=256),
        get_updates_request=AiohttpRequest(connection_pool_size=1),
        # Replies go out at once; a chat Telegram answered 429 for waits retry_after; calls
        # that failed for a moment (5xx, network) are retried. Notifications are paced by the
        # news sender's budget (bot/background.py), not here.
        rate_limiter=ChatFloodControl(max_retries=3) if rate_limit else None,
    )
    builder = ApplicationBuilder().bot(bot)
    metrics = Metrics()
    # Updates of one chat in order, of different chats concurrently; each claimed from the inbox.
    builder = builder.concurrent_updates(
        InboxProcessor(delivery, inner=TimedUpdateProcessor(metrics)))
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    application.bot_data["metrics"] = metrics
    application.bot_data["store"] = store
    application.bot_data["settings"] = settings
    application.bot_data["mail_transport"] = mail_transport or make_transport(
        settings.smtp_url, outbox=settings.outbox_dir)
    # First, so that its error handler counts every error, also those the inbox retries.
    metrics.install(application)
    install(application, delivery)
    register(application)
    return application


async def start_services(application: Application) -> None:
    """Start the background worker (mails, news, expiry) once the bot knows its username."""
    settings: Settings = application.bot_data["settings"]
    store: Store = application.bot_data["store"]
    username = settings.bot_username or application.bot.username
    application.bot_data["bot_username"] = username
    mails = OutboxSender(store, application.bot_data["mail_transport"],
                         bot_username=username, sender=settings.mail_from)
    store.webhook_endpoints = settings.shop_webhook_url
    webhooks = (WebhookSender(store, settings.shop_webhook_url, settings.shop_webhook_secret,
                              metrics=application.bot_data["metrics"])
                if settings.shop_webhook_url and settings.shop_webhook_secret else None)
    worker = BackgroundWorker(store, application.bot, mails,
                              broadcast_rate=settings.broadcast_rate,
                              paid_broadcast=settings.paid_broadcast,
                              webapp_url=settings.webapp_url, webhooks=webhooks)
    application.bot_data["worker"] = worker
    worker.start()
    try:
        await set_command_menu(application.bot)
    except TelegramError as error:  # the menu is a convenience: the bot serves without it
        log.warning("command menu not set: %s", type(error).__name__)
    # Queues what a previous run left unfinished, before the application takes new updates.
    keeper = InboxKeeper(application.bot_data["delivery"])
    application.bot_data["inbox_keeper"] = keeper
    await keeper.start()


async def stop_services(application: Application) -> None:
    keeper: InboxKeeper | None = application.bot_data.pop("inbox_keeper", None)
    if keeper is not None:
        await keeper.stop()
    worker: BackgroundWorker | None = application.bot_data.pop("worker", None)
    if worker is not None:
        await worker.stop()
