"""The background worker: sends queued chat news, e-mails and the shop's webhooks
(``bot/webhooks.py``), and expires overdue invitations.

News rows are taken from their leased queue (``storage/leased_queue.py``: several bot processes
never send the same news at the same time). A news item is marked sent after Telegram accepted
it; a crash in between sends it at most twice.

News are *notifications*: the bot sends them on its own, so Telegram's bulk limit applies (about
30 per second; 1,000 with paid broadcasts). They go out at ``TICKETBOT_BROADCAST_RATE``, one
budget for every process on the store (``storage/broadcast_budget.py``), each message at a send
time taken from it; a 429 pauses them all for ``retry_after``. Replies to users are not counted
against that budget and never wait behind a backlog of news (``bot/telegram_retry.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import enum
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from telegram import Bot
from telegram.constants import ParseMode
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.mail.sender import OutboxSender
from bot.telegram_retry import flood_wait, notifying
from bot.ticket_sender import TicketChangeSender
from bot.webhooks import WebhookSender
from conversations.common import NO_PREVIEW
from conversations.news import news_screen
from conversations.ticket_show import send_ticket
from locales import translator, user_language
from storage import services, ticket_delivery
from storage.broadcast_budget import Budget
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.leased_queue import NEWS, Lease
from storage.models import ChatNotification, Order, TelegramUser
from storage.services import privacy, reminders

log = logging.getLogger(__name__)

NEWS_LEASE = dt.timedelta(minutes=2)
NEWS_BATCH = 50  # news claimed at a time, at least; two seconds' worth at higher rates
MAX_NEWS_BATCH = 500
DEFAULT_BROADCAST_RATE = 25.0
REMINDER_EVERY = dt.timedelta(minutes=1)  # how often the worker looks for due reminders
# How often the worker removes what is kept no longer (storage/services/privacy.py).
RETENTION_EVERY = dt.timedelta(minutes=10)


class _Delivery(enum.Enum):
    SENT = "sent"
    DROPPED = "dropped"  # never to be sent: done all the same
    RETRY = "retry"  # rescheduled by its own transaction


@dataclass
class _Round:
    """What became of one chat's news in a round."""
    sent: int = 0
    done: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class _DueNews:
    lease: Lease
    telegram_id: int
    kind: str
    params: dict[str, Any]
    language: str


class NewsSender:
    """Delivers queued chat news through the bot, a batch at a time: one transaction claims
    the batch, one reads what it needs, the messages go out side by side (each chat's in
    order), and one transaction marks the batch sent. One write per news item would queue each
    of them behind the updates being handled, and news would trail far behind at a rush."""

    def __init__(self, store: Store, bot: Bot, *, rate: float = DEFAULT_BROADCAST_RATE,
                 paid_broadcast: bool = False, batch: int | None = None,
                 webapp_url: str | None = None) -> None:
        self.store = store
        self.bot = bot
        self.webapp_url = webapp_url  # the event-day reminder links to the live ticket
        self.budget = Budget(store, rate)
        self.batch = batch or max(NEWS_BATCH, min(MAX_NEWS_BATCH, int(2 * rate)))
        # With allow_paid_broadcast Telegram lets them go faster, for a fee in Stars.
        self._extra = {"allow_paid_broadcast": True} if paid_broadcast else {}
        self.more_due = False  # the last round took a full batch: more may be waiting
        self._paused_until = 0.0  # Unix time: Telegram answered 429 to a notification

    async def send_due(self) -> int:
        """Send the news due now (at most a batch), each at a send time of the shared budget;
        returns how many reached their chat."""
        claimed = await NEWS.claim(self.store, limit=self.batch, lease=NEWS_LEASE)
        self.more_due = len(claimed) >= self.batch
        if not claimed:
            return 0
        loaded = await self._load({lease.id: lease for lease in claimed})
        slots = await self.budget.take(len(loaded))
        by_chat: dict[int, list[tuple[_DueNews, float]]] = defaultdict(list)
        for index, news in enumerate(loaded):  # oldest first: a chat's news in order
            by_chat[news.telegram_id].append((news, slots.at(index)))
        outcomes = await asyncio.gather(
            *(self._send_chat(news) for news in by_chat.values()), return_exceptions=True)
        done: list[int] = []
        sent = 0
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                # Left claimed: sent again once the lease runs out.
                log.error("news round failed: %s", type(outcome).__name__, exc_info=outcome)
                continue
            done += outcome.done
            sent += outcome.sent
        await NEWS.finish(self.store, done)
        return sent

    async def _load(self, leases: dict[int, Lease]) -> list[_DueNews]:
        async with self.store.read() as session:
            rows = (await session.execute(
                select(ChatNotification, TelegramUser.chosen_language,
                       TelegramUser.telegram_language)
                .outerjoin(TelegramUser,
                           TelegramUser.telegram_id == ChatNotification.telegram_id)
                .where(ChatNotification.id.in_(leases))
                .order_by(ChatNotification.id)
            )).all()
            order_ids = {news.params.get("order_id") for news, _, _ in rows} - {None}
            order_languages = dict((await session.execute(
                select(Order.id, Order.language).where(Order.id.in_(order_ids))
            )).all()) if order_ids else {}
        return [
            _DueNews(leases[news.id], news.telegram_id, news.kind, news.params,
                     user_language(chosen, telegram,
                                   order_languages.get(news.params.get("order_id"))))
            for news, chosen, telegram in rows
        ]

    async def _send_chat(self, chat_news: list[tuple[_DueNews, float]]) -> _Round:
        """One chat's news, one after another, each no earlier than its send time."""
        outcome = _Round()
        for news, send_at in chat_news:
            wait = send_at - time.time()
            if wait > 0:
                await asyncio.sleep(wait)
            delivery = await self._deliver(news)
            if delivery is not _Delivery.RETRY:
                outcome.done.append(news.lease.id)
            outcome.sent += delivery is _Delivery.SENT
        return outcome

    async def _deliver(self, news: _DueNews) -> _Delivery:
        paused = self._paused_until - time.time()
        if paused > 0:  # a 429 in this round: the rest waits as long as Telegram asked
            # Not sent, not an attempt: due again once the pause is over.
            await NEWS.put_back(self.store, news.lease, dt.timedelta(seconds=paused))
            return _Delivery.RETRY
        screen = news_screen(news.kind, news.params, translator(news.language))
        card = None
        if news.kind == "reminder_event_day":
            try:  # the ticket again, if it is still in this holder's hands
                card = await ticket_delivery.held_card(
                    self.store, news.telegram_id, news.params["ticket_id"])
            except Refusal:
                return _Delivery.DROPPED
        try:
            with notifying():
                await self.bot.send_message(
                    news.telegram_id, screen.text, parse_mode=ParseMode.HTML,
                    reply_markup=screen.markup, link_preview_options=NO_PREVIEW, **self._extra)
                if card is not None:  # a second message: a second slot of the budget
                    wait = (await self.budget.take(1)).first - time.time()
                    if wait > 0:
                        await asyncio.sleep(wait)
                    await send_ticket(self.bot, self.store, news.telegram_id, card,
                                      news.language, webapp_url=self.webapp_url,
                                      **self._extra)
        except RetryAfter as error:
            wait = flood_wait(error)
            self._paused_until = max(self._paused_until, time.time() + wait.total_seconds())
            await self.budget.pause(wait.total_seconds())  # every process's notifications
            await self._retry_later(news.lease, error)
            return _Delivery.RETRY
        except (Forbidden, BadRequest) as error:
            # The user blocked the bot or the chat is gone: retrying will not help.
            log.info("news %s dropped: %s", news.lease.id, type(error).__name__)
            return _Delivery.DROPPED
        except TelegramError as error:
            await self._retry_later(news.lease, error)
            return _Delivery.RETRY
        return _Delivery.SENT

    async def _retry_later(self, lease: Lease, error: TelegramError) -> None:
        """Due again later; given up after a few tries (the order overview still shows it)."""
        delay = (flood_wait(error) if isinstance(error, RetryAfter)
                 else dt.timedelta(seconds=min(3600, 10 * 2 ** min(lease.attempts, 8))))
        log.warning("news %s not sent (%s), retrying", lease.id, type(error).__name__)
        await NEWS.retry_later(self.store, lease, delay)


class BackgroundWorker:
    """Runs the periodic jobs; ``wake()`` makes them run at once after a commit. News (and
    the expiry of invitations) and mails run side by side, so that a slow mail server never
    holds up news in the chat."""

    def __init__(self, store: Store, bot: Bot, mails: OutboxSender, *,
                 interval: float = 2.0, broadcast_rate: float = DEFAULT_BROADCAST_RATE,
                 paid_broadcast: bool = False, webapp_url: str | None = None,
                 clock: Callable[[], dt.datetime] = utcnow,
                 webhooks: WebhookSender | None = None) -> None:
        self.store = store
        self.clock = clock  # what time reminders think it is (tests set it)
        self.news = NewsSender(store, bot, rate=broadcast_rate, paid_broadcast=paid_broadcast,
                               webapp_url=webapp_url)
        self.tickets = TicketChangeSender(store, bot, budget=self.news.budget,
                                          paid_broadcast=paid_broadcast, webapp_url=webapp_url)
        self.mails = mails
        self.webhooks = webhooks  # the shop's webhooks, on a task of their own
        self.interval = interval
        self._next_reminders: dt.datetime | None = None
        self._next_retention: dt.datetime | None = None
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task] = []

    def wake(self) -> None:
        self._wake.set()
        self.mails.wake()
        if self.webhooks is not None:
            self.webhooks.wake()

    async def run_once(self) -> None:
        await self._news_round()
        await self.mails.send_due()

    async def _news_round(self) -> None:
        await services.expire_invitations(self.store)
        if await self.reminders_due():
            self.mails.wake()  # reminders by e-mail were queued too, maybe
        await self.news.send_due()
        if await self.tickets.send_due():
            self.mails.wake()  # "your ticket" e-mails were queued
        await self.retention_due()

    async def reminders_due(self) -> int:
        """Queue the reminders due now, at most once a minute of the worker's clock (each
        look costs a few queries per upcoming event)."""
        now = self.clock()
        if self._next_reminders is not None and now < self._next_reminders:
            return 0
        self._next_reminders = now + REMINDER_EVERY
        return await reminders.queue_due_reminders(self.store, now)

    async def retention_due(self) -> list[str]:
        """Every ``RETENTION_EVERY`` of the worker's clock: drop old sent messages, shred the
        events whose retention is over (once each, resumable: privacy.shred_event). Returns
        the events shredded."""
        now = self.clock()
        if self._next_retention is not None and now < self._next_retention:
            return []
        self._next_retention = now + RETENTION_EVERY
        forgotten = await privacy.forget_old_messages(self.store, now)
        shredded = await privacy.shred_due_events(self.store, now)
        if shredded or forgotten:
            await self.store.truncate_wal()
        for event_id in shredded:
            log.info("personal data of event %s removed (retention over)", event_id)
        return shredded

    async def _news_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                await self._news_round()
            except Exception as error:  # keep the worker alive through any outage
                log.error("background run failed: %s", type(error).__name__, exc_info=error)
            if self.news.more_due or self.tickets.more_due:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.interval)

    def start(self) -> None:
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(self._news_loop(), name="ticketbot-news"),
            asyncio.create_task(self.mails.run(self._stop, interval=self.interval),
                                name="ticketbot-mails"),
        ]
        if self.webhooks is not None:
            self._tasks.append(asyncio.create_task(self.webhooks.run(self._stop),
                                                   name="ticketbot-webhooks"))

    async def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self.mails.wake()
        if self.webhooks is not None:
            self.webhooks.wake()
        await asyncio.gather(*self._tasks)
        self._tasks = []
        await self.mails.transport.close()
        if self.webhooks is not None:
            await self.webhooks.close()
