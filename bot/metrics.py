"""Prometheus metrics of the bot: updates by kind, handler errors, handler latency, and the
e-mails of the outbox by state (read from the store at each scrape, so that every process
reports the same numbers)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from telegram import Update
from telegram.ext import Application, ContextTypes, SimpleUpdateProcessor, TypeHandler

from storage.db.store import Store
from storage.reads.health import outbox_counts

CONTENT_TYPE = CONTENT_TYPE_LATEST
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def update_kind(update: object) -> str:
    """``message``, ``callback_query``… : the field of the update that is set."""
    if isinstance(update, Update):
        for kind in Update.ALL_TYPES:
            if getattr(update, kind, None) is not None:
                return str(kind)
    return "other"


class Metrics:
    """The bot's metrics, in a registry of their own (so that tests can make several)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.updates = Counter(
            "ticketbot_updates",
            "Telegram updates received, by kind",
            ["kind"],
            registry=self.registry,
        )
        self.handler_errors = Counter(
            "ticketbot_handler_errors",
            "Updates whose handler raised an error",
            registry=self.registry,
        )
        self.latency = Histogram(
            "ticketbot_update_seconds",
            "Time to process one update through the handlers",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.webhook_deliveries = Counter(
            "ticketbot_webhook_deliveries",
            "Webhook delivery outcomes in this process: delivered, retrying (a try failed), "
            "failed (the retry schedule ran out), stopped (410 Gone)",
            ["state"],
            registry=self.registry,
        )
        self.emails = Gauge(
            "ticketbot_emails", "E-mails of the outbox, by state", ["state"], registry=self.registry
        )

    def install(self, application: Application) -> None:
        """Count every update in an early group; it never stops the handlers after it."""
        application.add_handler(TypeHandler(Update, self._count_update), group=-1)
        application.add_error_handler(self._count_error)

    async def _count_update(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.updates.labels(kind=update_kind(update)).inc()

    async def _count_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.handler_errors.inc()

    async def render(self, store: Store) -> bytes:
        """The text exposition format, with the outbox read from the store just now."""
        for state, count in (await outbox_counts(store)).items():
            self.emails.labels(state=state).set(count)
        return generate_latest(self.registry)


class TimedUpdateProcessor(SimpleUpdateProcessor):
    """PTB's default processor (one update at a time) that also times each update."""

    def __init__(self, metrics: Metrics, max_concurrent_updates: int = 1) -> None:
        super().__init__(max_concurrent_updates)
        self.metrics = metrics

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        started = time.perf_counter()
        try:
            await coroutine
        finally:
            self.metrics.latency.observe(time.perf_counter() - started)
