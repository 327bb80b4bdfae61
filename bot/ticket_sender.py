"""The background half of the ticket in hand: each barcode change queued in the store
(``ticket_changes``) voids the chat messages that showed the old code, sends the ticket to its
new holder's chat, and queues the "your ticket" e-mail. See ``storage/ticket_delivery.py`` for
what is promised; this module keeps those promises through Telegram's outages: a change that
failed is retried later (its lease runs out if the process dies), and is done only once all of
it went through.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from telegram import Bot
from telegram.error import BadRequest, Forbidden, RetryAfter, TelegramError

from bot.telegram_retry import flood_wait, notifying
from conversations.ticket_show import holder_language, send_ticket, void_message
from locales import DEFAULT_LANGUAGE
from storage import ticket_delivery
from storage.broadcast_budget import Budget
from storage.db.store import Store
from storage.ticket_delivery import ChangeWork

log = logging.getLogger(__name__)

CLEANUP_EVERY = 3600.0  # seconds between two prunings of changes done days ago


class TicketChangeSender:
    """Carries out due barcode changes, oldest first (so a ticket renamed twice in a row ends
    with its newest code in the holder's chat). Its messages are notifications: each waits for
    a send time of the shared ``budget`` (the news'), and a 429 pauses every process's."""

    def __init__(self, store: Store, bot: Bot, *, budget: Budget | None = None,
                 paid_broadcast: bool = False, webapp_url: str | None = None) -> None:
        self.store = store
        self.bot = bot
        self.webapp_url = webapp_url  # where a rotating ticket's live code opens
        self.budget = budget
        self._extra = {"allow_paid_broadcast": True} if paid_broadcast else {}
        self.more_due = False  # the last round took a full batch: more may be waiting
        self._next_cleanup = 0.0  # monotonic time of the next pruning of old changes

    async def send_due(self) -> int:
        """Carry out the changes due now (at most a batch); returns how many were done."""
        if time.monotonic() >= self._next_cleanup:
            self._next_cleanup = time.monotonic() + CLEANUP_EVERY
            await ticket_delivery.forget_done_changes(self.store)
        done = 0
        claimed = await ticket_delivery.claim_due_changes(self.store)
        self.more_due = len(claimed) >= ticket_delivery.CHANGE_BATCH
        for lease in claimed:
            work = await ticket_delivery.change_work(self.store, lease)
            if work is None:
                continue
            try:
                await self._carry_out(work)
            except TelegramError as error:
                await self._retry_later(work, error)
                continue
            done += 1
        return done

    async def _carry_out(self, work: ChangeWork) -> None:
        card = work.deliver
        for sent in work.to_void:
            ref = card.ref if card else await self._ref_of(sent.ticket_id)
            await self._paced()
            with notifying():
                await void_message(self.bot, self.store, sent, ref)
        language = holder_language(card) if card is not None else DEFAULT_LANGUAGE
        if card is not None and card.holder_telegram_id is not None and not work.delivered_already:
            try:
                await self._paced()
                with notifying():
                    await send_ticket(self.bot, self.store, card.holder_telegram_id, card,
                                      language, webapp_url=self.webapp_url, **self._extra)
            except (Forbidden, BadRequest):
                # The holder blocked the bot or the chat is gone: the e-mail still goes out.
                log.info("ticket change %s: holder's chat unreachable", work.lease.id)
        await ticket_delivery.finish_change(
            self.store, work.lease, mail=card,
            recipient=card.holder_email if card is not None else None, language=language)

    async def _paced(self) -> None:
        """Wait for this message's send time in the shared budget."""
        if self.budget is not None:
            wait = (await self.budget.take(1)).first - time.time()
            if wait > 0:
                await asyncio.sleep(wait)

    async def _ref_of(self, ticket_id: int) -> str:
        return await ticket_delivery.ticket_ref(self.store, ticket_id)

    async def _retry_later(self, work: ChangeWork, error: TelegramError) -> None:
        if isinstance(error, RetryAfter) and self.budget is not None:
            await self.budget.pause(flood_wait(error).total_seconds())  # every process's
        delay = (flood_wait(error) if isinstance(error, RetryAfter)
                 else dt.timedelta(seconds=min(3600, 10 * 2 ** min(work.lease.attempts, 8))))
        log.warning("ticket change %s not carried out (%s: %s), retrying", work.lease.id,
                    type(error).__name__, error)
        await ticket_delivery.retry_change(self.store, work.lease, delay)
