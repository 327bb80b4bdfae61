"""Our aiohttp server next to the bot, and the lifecycle of both.

The server always carries the HTTP API. By default the bot long-polls Telegram; with
``TICKETBOT_WEBHOOK_URL`` set, the bot registers that URL with a secret token and Telegram
POSTs each update to our server instead. In that mode python-telegram-bot runs no updater and
calls no ``post_init``, so this module starts and stops everything itself: the application,
our background worker and mailer, and the HTTP server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from telegram import Update
from telegram.ext import Application

from bot.application import (
    build_application,
    open_configured_store,
    start_services,
    stop_services,
)
from bot.http.app import create_api
from bot.http.kernel import ApiServices, Handler, JsonRefused, read_json
from bot.http.request_log import request_error_log
from bot.inbox import receive_update
from bot.process_memory import settle_heap
from bot.settings import Settings
from bot.unread_fields import trim_update
from bot.webapp import MiniAppServices, create_miniapp
from storage.db.store import Store

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"

UpdateSink = Callable[[dict[str, Any]], Awaitable[None]]


def webhook_secret_from(secret: bytes) -> str:
    """The webhook's secret token when ``TICKETBOT_WEBHOOK_SECRET`` is unset: an HMAC of the
    store's secret (``TICKETBOT_SECRET``, or the one generated once and kept in the store), so
    that every process behind one URL registers the same token without more configuration,
    and the token reveals nothing of the link secret. 43 characters of ``[A-Za-z0-9_-]``."""
    digest = hmac.new(secret, b"telegram webhook secret token", hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def webhook_path(url: str) -> str:
    """Where our server listens for Telegram: the path of the webhook URL."""
    return urlsplit(url).path or "/"


def queue_update(application: Application) -> UpdateSink:
    """Hand each update Telegram delivered on to processing: the one place updates enter in
    webhook mode. The inbox stores it before it is queued, so once we answered 200 it
    cannot be lost (see ``bot/inbox.py``)."""

    async def sink(payload: dict[str, Any]) -> None:
        payload = trim_update(payload)
        await receive_update(application, Update.de_json(payload, application.bot), payload)

    return sink


def webhook_handler(secret: str, sink: UpdateSink) -> Handler:
    """The route Telegram POSTs updates to: checks the secret token Telegram repeats in a
    header, hands the update on and answers as soon as it is queued (Telegram waits for our
    answer before it sends the chat's next update). If handing on fails, the error answer
    makes Telegram deliver the update again."""
    expected = secret.encode()

    async def receive_update(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode()
        if not hmac.compare_digest(given, expected):
            return web.json_response(
                {"error": "forbidden", "message": "Wrong secret token."}, status=403
            )
        try:
            payload = read_json(await request.read())
        except JsonRefused as refused:
            return refused.response()
        if not isinstance(payload, dict) or not isinstance(payload.get("update_id"), int):
            return web.json_response(
                {"error": "malformed_update", "message": "The body is not a Telegram update."},
                status=400,
            )
        await sink(payload)
        return web.Response(status=200)

    return receive_update


class BotServer:
    """The bot (polling or webhook) and our HTTP server, started and stopped together."""

    def __init__(
        self, settings: Settings, store: Store, application: Application, *, poll_timeout: int = 10
    ) -> None:
        self.settings = settings
        self.store = store
        self.application = application
        self.webhook_url = settings.webhook_url
        # Unset: derived from the store's link secret at start (webhook_secret_from).
        self.webhook_secret = settings.webhook_secret
        self.poll_timeout = poll_timeout
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    def web_app(self) -> web.Application:
        api = ApiServices(
            store=self.store,
            api_token=self.settings.api_token,
            gate_tokens=self.settings.gate_token,
            bot_username=self._bot_username,
            metrics=self.application.bot_data["metrics"],
            bot_running=self.bot_running,
            after_change=self._wake_worker,
        )
        webhook = None
        if self.webhook_url:
            webhook = (
                webhook_path(self.webhook_url),
                webhook_handler(self.webhook_secret, queue_update(self.application)),
            )
        return create_api(api, webhook=webhook, miniapp=create_miniapp(MiniAppServices(
            store=self.store, bot_token=self.settings.token or "",
            bot_username=self._bot_username, max_age=self.settings.webapp_auth_max_age,
            support_contact=self.settings.support_contact, after_change=self._wake_worker,
            staff_ids=self.settings.staff_ids)))

    def bot_running(self) -> bool:
        application = self.application
        if not application.running:
            return False
        return bool(self.webhook_url) or (
            application.updater is not None and application.updater.running
        )

    def _bot_username(self) -> str:
        return self.settings.bot_username or self.application.bot.username

    def _wake_worker(self) -> None:
        worker = self.application.bot_data.get("worker")
        if worker is not None:
            worker.wake()

    async def start(self) -> None:
        """Start the bot and its services, then serve; in webhook mode, register the webhook
        last, once our server can take the first delivery."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        application = self.application
        if self.webhook_url and not self.webhook_secret:
            self.webhook_secret = webhook_secret_from(await self.store.secret())
        await application.initialize()
        await start_services(application)
        await application.start()
        self._runner = web.AppRunner(
            self.web_app(), access_log=None, logger=request_error_log()
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.http_host, self.settings.http_port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        log.info("HTTP API listening on %s:%s", self.settings.http_host, self.port)
        if self.webhook_url:
            await application.bot.set_webhook(self.webhook_url, secret_token=self.webhook_secret)
            log.info("webhook registered; updates arrive on %s", webhook_path(self.webhook_url))
        else:
            await application.updater.start_polling(timeout=self.poll_timeout)
            log.info("polling Telegram for updates")

    async def stop(self) -> None:
        """Stop taking updates first, then finish those queued, then stop the services. The
        webhook stays registered: Telegram keeps updates while we are away."""
        application = self.application
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await stop_services(application)
        await application.shutdown()


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """``ticketbot run``: migrate, open the store, run the bot and the server until ``stop``."""
    store = await open_configured_store(settings)
    try:
        application = build_application(settings, store, webhook=bool(settings.webhook_url))
        server = BotServer(settings, store, application)
        await server.start()
        settle_heap()
        try:
            await stop.wait()
        finally:
            await server.stop()
    finally:
        await store.close()
