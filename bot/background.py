"""The background worker: sends queued chat news and e-mails, and expires overdue invitations.

News rows are claimed with a conditional update (a lease), so several bot processes can run
workers on one database without sending the same news twice at the same time. A news item is
marked sent after Telegram accepted it; a crash in between sends it at most twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging

from sqlalchemy import select, update
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.mailer import OutboxSender
from conversations.common import NO_PREVIEW
from conversations.news import news_screen
from locales import pick_language, translator
from storage import services
from storage.database import Store, utcnow
from storage.models import ChatNotification, Order, TelegramUser

log = logging.getLogger(__name__)

NEWS_LEASE = dt.timedelta(minutes=2)
NEWS_BATCH = 50
MAX_NEWS_ATTEMPTS = 8


class NewsSender:
    """Delivers queued chat news through the bot."""

    def __init__(self, store: Store, bot: Bot) -> None:
        self.store = store
        self.bot = bot

    async def send_due(self) -> int:
        now = utcnow()
        async with self.store.read() as session:
            due = (await session.execute(
                select(ChatNotification.id, ChatNotification.next_attempt_at)
                .where(ChatNotification.sent_at.is_(None),
                       ChatNotification.next_attempt_at <= now)
                .order_by(ChatNotification.id).limit(NEWS_BATCH)
            )).all()
        sent = 0
        for news_id, seen in due:
            if await self._claim(news_id, seen, now):
                sent += await self._deliver(news_id)
        return sent

    async def _claim(self, news_id: int, seen: dt.datetime, now: dt.datetime) -> bool:
        async with self.store.write() as session:
            result = await session.execute(
                update(ChatNotification)
                .where(ChatNotification.id == news_id, ChatNotification.sent_at.is_(None),
                       ChatNotification.next_attempt_at == seen)
                .values(next_attempt_at=now + NEWS_LEASE,
                        attempts=ChatNotification.attempts + 1)
            )
            return result.rowcount == 1

    async def _deliver(self, news_id: int) -> int:
        async with self.store.read() as session:
            news = await session.get(ChatNotification, news_id)
            user = await session.get(TelegramUser, news.telegram_id)
            order_language = await session.scalar(
                select(Order.language).where(Order.id == news.params.get("order_id")))
        language = pick_language(user and user.chosen_language, user and user.telegram_language,
                                 order_language)
        screen = news_screen(news.kind, news.params, translator(language))
        try:
            await self.bot.send_message(news.telegram_id, screen.text, parse_mode=ParseMode.HTML,
                                        reply_markup=screen.markup,
                                        link_preview_options=NO_PREVIEW)
        except (Forbidden, BadRequest) as error:
            # The user blocked the bot or the chat is gone: retrying will not help.
            log.info("news %s dropped: %s", news_id, type(error).__name__)
        except (RetryAfter, TelegramError) as error:
            await self._retry_later(news_id, news.attempts, error)
            return 0
        await self._mark_sent(news_id)
        return 1

    async def _retry_later(self, news_id: int, attempts: int, error: TelegramError) -> None:
        wait = getattr(error, "retry_after", None)
        delay = (wait if isinstance(wait, dt.timedelta)
                 else dt.timedelta(seconds=min(3600, 10 * 2 ** min(attempts, 8))))
        log.warning("news %s not sent (%s), retrying", news_id, type(error).__name__)
        async with self.store.write() as session:
            values = {"next_attempt_at": utcnow() + delay}
            if attempts >= MAX_NEWS_ATTEMPTS:
                values["sent_at"] = utcnow()  # give up: the order overview still shows it
            await session.execute(
                update(ChatNotification).where(ChatNotification.id == news_id).values(**values))

    async def _mark_sent(self, news_id: int) -> None:
        async with self.store.write() as session:
            await session.execute(
                update(ChatNotification).where(ChatNotification.id == news_id)
                .values(sent_at=utcnow()))


class BackgroundWorker:
    """Runs the periodic jobs; ``wake()`` makes it run at once after a commit."""

    def __init__(self, store: Store, bot: Bot, mails: OutboxSender, *,
                 interval: float = 2.0) -> None:
        self.store = store
        self.news = NewsSender(store, bot)
        self.mails = mails
        self.interval = interval
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    def wake(self) -> None:
        self._wake.set()

    async def run_once(self) -> None:
        await services.expire_invitations(self.store)
        await self.news.send_due()
        await self.mails.send_due()

    async def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self.run_once()
            except Exception as error:  # keep the worker alive through any outage
                log.error("background run failed: %s", type(error).__name__, exc_info=error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def start(self) -> None:
        self._stop.clear()
        self._task = asyncio.create_task(self._loop(), name="ticketbot-background")

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self.mails.transport.close()
