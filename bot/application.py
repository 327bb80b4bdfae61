"""The one place that wires Ticketbot together: store, Telegram application, mailer, worker."""

from __future__ import annotations

import logging

from telegram.ext import AIORateLimiter, Application, ApplicationBuilder

from bot.background import BackgroundWorker
from bot.mailer import MailTransport, OutboxSender, make_transport
from bot.metrics import Metrics, TimedUpdateProcessor
from bot.settings import Settings
from conversations.handlers import register
from storage.database import Store, open_store


async def open_configured_store(settings: Settings) -> Store:
    """Migrate the configured database and open the store on it."""
    return await open_store(settings.database_url, secret=settings.secret,
                            claim_link_ttl=settings.claim_link_ttl)


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
    builder = (
        ApplicationBuilder()
        .token(settings.token)
        .base_url(settings.telegram_api_url)
    )
    if rate_limit:
        # Stays under Telegram's flood limits and retries once told to wait (429 retry_after).
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    metrics = Metrics()
    builder = builder.concurrent_updates(TimedUpdateProcessor(metrics))
    if webhook:
        builder = builder.updater(None)
    application = builder.build()
    application.bot_data["metrics"] = metrics
    application.bot_data["store"] = store
    application.bot_data["settings"] = settings
    application.bot_data["mail_transport"] = mail_transport or make_transport(
        settings.smtp_url, outbox=settings.outbox_dir)
    register(application)
    metrics.install(application)
    return application


async def start_services(application: Application) -> None:
    """Start the background worker (mails, news, expiry) once the bot knows its username."""
    settings: Settings = application.bot_data["settings"]
    store: Store = application.bot_data["store"]
    username = settings.bot_username or application.bot.username
    application.bot_data["bot_username"] = username
    mails = OutboxSender(store, application.bot_data["mail_transport"],
                         bot_username=username, sender=settings.mail_from)
    worker = BackgroundWorker(store, application.bot, mails)
    application.bot_data["worker"] = worker
    worker.start()


async def stop_services(application: Application) -> None:
    worker: BackgroundWorker | None = application.bot_data.pop("worker", None)
    if worker is not None:
        await worker.stop()
