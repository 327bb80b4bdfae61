"""Outbound webhooks, the sending side: delivers the messages the services queued
(``storage/webhook_outbox.py`` says what is promised) to the shop's endpoints, signed per
Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``: an HMAC-SHA256
of ``id.timestamp.body`` with the ``whsec_`` secret, made by the reference library).

- **Retries** follow the specification's schedule: at once, then 5 s, 5 min, 30 min, 2 h, 5 h,
  10 h and 10 h after each failure; after the eighth try the delivery is ``failed`` and waits
  for an operator (``POST /api/webhook-deliveries/{id}/retry``). Any answer but 2xx, a
  redirect, a timeout or a refused connection is a failure.
- **``410 Gone``** stops that endpoint: its waiting deliveries are ``stopped`` and the log
  says so (naming the endpoint's host, never its path, which may hold a token).
- **A dead endpoint never slows a reply.** The sender is a task of its own; replies never wait
  on it. A round's deliveries go side by side, each attempt cut off after ``timeout``; what it
  shares with replies is the store, a few writes per round.
- **Several processes** may run a sender on one store: deliveries are leased
  (``storage/leased_queue.py``), so one message is never being delivered twice at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

import aiohttp
from standardwebhooks.webhooks import Webhook

from bot.metrics import Metrics
from storage import webhook_outbox as outbox
from storage.db.store import Store, utcnow
from storage.models import DeliveryState

log = logging.getLogger(__name__)

# The delay after the 1st, 2nd … 7th failed try (Standard Webhooks' schedule); the 8th is the
# last.
SCHEDULE = (dt.timedelta(seconds=5), dt.timedelta(minutes=5), dt.timedelta(minutes=30),
            dt.timedelta(hours=2), dt.timedelta(hours=5), dt.timedelta(hours=10),
            dt.timedelta(hours=10))
TIMEOUT = 10.0  # seconds an endpoint has to answer
BATCH = 100


def describe(error: BaseException) -> str:
    """An error as the store keeps it: its class only (messages may quote the URL)."""
    return type(error).__name__


def host_of(endpoint: str) -> str:
    return urlsplit(endpoint).netloc


class WebhookSender:
    """Delivers due webhook deliveries to ``endpoints`` (the configured ones; a delivery to
    an endpoint no longer configured is stopped), signed with ``secret``."""

    def __init__(self, store: Store, endpoints: Sequence[str], secret: str, *,
                 metrics: Metrics | None = None, timeout: float = TIMEOUT,
                 batch: int = BATCH, schedule: Sequence[dt.timedelta] = SCHEDULE) -> None:
        self.store = store
        self.endpoints = frozenset(endpoints)
        self.signer = Webhook(secret)
        self.metrics = metrics
        self.timeout = timeout
        self.batch = batch
        self.schedule = tuple(schedule)
        # The lease outlives the longest attempt, or another process could take it meanwhile.
        self.lease = dt.timedelta(seconds=3 * timeout + 30)
        self._wake = asyncio.Event()
        self._client: aiohttp.ClientSession | None = None

    def wake(self) -> None:
        """Deliver now rather than at the next interval (after a commit that queued some)."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, interval: float = 1.0) -> None:
        """Deliver due messages until ``stop`` is set; at once while rounds find work."""
        while not stop.is_set():
            self._wake.clear()
            try:
                taken = await self.send_due()
            except Exception as error:  # keep delivering through any outage of the store
                log.error("webhook round failed: %s", describe(error))
                taken = 0
            if taken:
                continue  # an order's next message may be ready now
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), interval)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    async def send_due(self) -> int:
        """One round: claim due deliveries, send them side by side, record the outcomes in
        one transaction. Returns how many were claimed."""
        due = await outbox.claim_due(self.store, limit=self.batch, lease=self.lease)
        if not due:
            return 0
        stopped = await outbox.stopped_endpoints(self.store)
        outcomes = await asyncio.gather(*(self._attempt(delivery, stopped) for delivery in due))
        recorded = [outcome for outcome in outcomes if outcome is not None]
        await outbox.record_round(self.store, recorded)
        for outcome in recorded:
            self._count("retrying" if outcome.state is DeliveryState.PENDING
                        else outcome.state.value)
        return len(due)

    async def _attempt(self, delivery: outbox.DueDelivery, stopped: frozenset[str],
                       ) -> outbox.Outcome | None:
        """Send one delivery; its outcome, or None once a 410 stopped its endpoint (and it
        with it)."""
        lease = delivery.lease
        if delivery.endpoint not in self.endpoints or delivery.endpoint in stopped:
            return outbox.Outcome(lease, DeliveryState.STOPPED,
                                  error="endpoint stopped or no longer configured")
        try:
            status = await self._post(delivery)
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            return self._failed(delivery, None, describe(error))
        if 200 <= status < 300:
            return outbox.Outcome(lease, DeliveryState.DELIVERED, status)
        if status == 410:
            count = await outbox.stop_endpoint(self.store, delivery.endpoint, status=status)
            self._count(DeliveryState.STOPPED.value, count)
            log.warning("webhook endpoint %s answered 410 Gone: stopped, with its %d waiting "
                        "deliveries", host_of(delivery.endpoint), count)
            return None
        return self._failed(delivery, status, f"HTTP {status}")

    async def _post(self, delivery: outbox.DueDelivery) -> int:
        if self._client is None:
            self._client = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.timeout))
        now = utcnow()
        headers = {
            "Content-Type": "application/json",
            "webhook-id": delivery.webhook_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": self.signer.sign(delivery.webhook_id, now, delivery.body),
        }
        async with self._client.post(delivery.endpoint, data=delivery.body.encode(),
                                     headers=headers, allow_redirects=False) as answer:
            await answer.read()  # so that the connection can be reused
            return answer.status

    def _failed(self, delivery: outbox.DueDelivery, status: int | None,
                error: str) -> outbox.Outcome:
        """Tried again on the schedule, or given up after its last try."""
        attempts = delivery.lease.attempts
        where = host_of(delivery.endpoint)
        if attempts > len(self.schedule):
            log.warning("webhook %s to %s failed %d times (%s): given up", delivery.webhook_id,
                        where, attempts, error)
            return outbox.Outcome(delivery.lease, DeliveryState.FAILED, status, error)
        delay = self.schedule[attempts - 1]
        log.info("webhook %s to %s not delivered (%s), try %d; next in %d s",
                 delivery.webhook_id, where, error, attempts, delay.total_seconds())
        return outbox.Outcome(delivery.lease, DeliveryState.PENDING, status, error, delay)

    def _count(self, state: str, count: int = 1) -> None:
        if self.metrics is not None and count:
            self.metrics.webhook_deliveries.labels(state=state).inc(count)
