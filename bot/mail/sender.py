"""The outbox sender: drains ``outbox_mails`` through a mail transport (``bot.mail.transport``).

Services write an ``OutboxMail`` row in the same transaction as its cause; ``OutboxSender``
sends it after the commit. Any number of bot processes may run a sender on the same store: the
rows are a leased queue (``storage/leased_queue.py``), so only one process sends a mail at a
time, and a process that dies mid-send leaves the mail to be picked up again when the lease
runs out.

Delivery is at least once. A mail is marked sent only after the SMTP server accepted it, so a
failure never loses it: it is retried with exponential backoff. The price is a possible
duplicate when the process dies (or the store fails) between the server's acceptance and the
mark, or when the connection drops after the server accepted the data but before it replied:
the mail is then sent a second time. Its ``Message-ID`` is fixed when the row is written, so
receivers can recognise the copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import random

import aiosmtplib

from bot.mail.content import render_outbox_mail
from bot.mail.message import MailObsolete
from bot.mail.transport import MailTransport
from storage.db.store import Store
from storage.leased_queue import MAILS, Lease
from storage.models import OutboxMail

logger = logging.getLogger(__name__)

FIRST_RETRY = dt.timedelta(seconds=10)
LONGEST_RETRY = dt.timedelta(hours=1)


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed try: 10 s, 20 s, 40 s … at most 1 h,
    shortened by up to a tenth so that mails that failed together do not retry together."""
    exponent = min(max(attempts - 1, 0), 20)
    delay = min(FIRST_RETRY * 2**exponent, LONGEST_RETRY)
    return delay * (1 - random.uniform(0, 0.1))


def describe_error(error: BaseException) -> str:
    """The error's class and SMTP code, e.g. ``SMTPRecipientsRefused 550``; never its message,
    which may quote an address."""
    code = getattr(error, "code", None)
    if code is None and isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        code = error.recipients[0].code
    name = type(error).__name__
    return f"{name} {code}" if isinstance(code, int) else name


class OutboxSender:
    """Sends due outbox mails through a transport, claiming each so that concurrent senders
    never send the same mail at the same time."""

    def __init__(
        self,
        store: Store,
        transport: MailTransport,
        *,
        bot_username: str,
        sender: str,
        batch: int = 50,
        lease: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.transport = transport
        self.bot_username = bot_username
        self.sender = sender
        self.batch = batch
        self.lease = lease
        self._wake = asyncio.Event()
        # Mails the server accepted but the store failed to mark: marked again before sending.
        self._unmarked: set[int] = set()

    def wake(self) -> None:
        """Send now rather than at the next interval (call after a commit that queued mail).
        Call it from the event loop's thread."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, interval: float = 2.0) -> None:
        """Send due mails every ``interval`` seconds, or when woken, until ``stop`` is set.
        The transport stays open; its owner closes it."""
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.send_due()
            except Exception as error:
                # SQLAlchemy errors quote their parameters, which may include addresses.
                logger.error("Outbox round failed: %s", describe_error(error))
                sent = 0
            if sent >= self.batch:
                continue  # a full batch went out: more may be waiting
            await self._sleep(stop, interval)

    async def send_due(self) -> int:
        """Send the mails that are due now (at most one batch); returns how many went out.
        Each mail is claimed just before it is sent, so that its lease starts with its send."""
        await self._mark_unmarked()
        secret = await self.store.secret()
        sent = 0
        for _ in range(self.batch):
            claimed = await MAILS.claim(self.store, limit=1, lease=self.lease)
            if not claimed:
                break
            if await self._deliver(claimed[0], secret):
                sent += 1
        return sent

    async def _deliver(self, lease: Lease, secret: bytes) -> bool:
        try:
            async with self.store.read() as session:
                mail = await session.get(OutboxMail, lease.id)
                if mail is None:
                    return False
                message = await render_outbox_mail(
                    session,
                    mail,
                    secret=secret,
                    bot_username=self.bot_username,
                    sender=self.sender,
                )
            # Finish well within the lease, or another sender may take the mail meanwhile.
            async with asyncio.timeout(self.lease.total_seconds() / 2):
                await self.transport.send(message)
        except MailObsolete:
            # A link that already stopped working would only confuse the recipient.
            await self._mark_sent(lease.id, note="obsolete: not sent")
            return False
        except Exception as error:
            await self._record_failure(lease, error)
            return False
        try:
            await self._mark_sent(lease.id)
        except Exception as error:
            self._unmarked.add(lease.id)
            logger.error(
                "Outbox mail %d was sent but could not be marked: %s",
                lease.id,
                describe_error(error),
            )
        return True

    async def _mark_sent(self, mail_id: int, *, note: str | None = None) -> None:
        await MAILS.finish(self.store, [mail_id], last_error=note)

    async def _mark_unmarked(self) -> None:
        for mail_id in sorted(self._unmarked):
            await self._mark_sent(mail_id)
            self._unmarked.discard(mail_id)

    async def _record_failure(self, lease: Lease, error: Exception) -> None:
        reason = describe_error(error)
        delay = retry_delay(lease.attempts)
        await MAILS.retry_later(self.store, lease, delay, last_error=reason)
        # No recipient, no link: logs are not the place for personal data or credentials.
        logger.warning(
            "Outbox mail %d not sent (attempt %d): %s; next try in %d s",
            lease.id,
            lease.attempts,
            reason,
            delay.total_seconds(),
        )

    async def _sleep(self, stop: asyncio.Event, interval: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
