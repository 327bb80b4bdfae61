"""Outbound webhooks: each message as it will be sent, one delivery per endpoint (the leased
queue the sender drains), and the endpoints that answered ``410 Gone``."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, UtcDateTime, enum_column


class DeliveryState(enum.StrEnum):
    PENDING = "pending"  # due, leased, or waiting for its next try
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # every try of the retry schedule failed; an operator may retry it
    STOPPED = "stopped"  # the endpoint answered 410 Gone, or is no longer configured


class WebhookMessage(Base):
    """A message written in the transaction of its cause. ``body`` is the JSON sent, fixed
    here so that every retry (and every endpoint) gets the same bytes under the same
    ``webhook_id``."""

    __tablename__ = "webhook_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    webhook_id: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class WebhookDelivery(Base):
    """One message to one endpoint. ``order_id`` is the message's, copied so that the queue
    can hold back an order's later messages while an earlier one is not finished."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("webhook_messages.id"))
    endpoint: Mapped[str] = mapped_column(String(2000))
    order_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[DeliveryState] = mapped_column(
        enum_column(DeliveryState, "webhook_delivery_state"), default=DeliveryState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(200))

    __table_args__ = (
        Index("ix_webhook_deliveries_due", "finished_at", "next_attempt_at"),
        # What the queue asks of every due row: is an earlier one of its order still waiting?
        Index("ix_webhook_deliveries_waiting_order", "endpoint", "order_id", "id",
              sqlite_where=text("finished_at IS NULL"),
              postgresql_where=text("finished_at IS NULL")),
        Index("ix_webhook_deliveries_message_id", "message_id"),
        Index("ix_webhook_deliveries_state", "state", "id"),
    )


class StoppedWebhookEndpoint(Base):
    """An endpoint that answered ``410 Gone``: nothing more is sent there until an operator
    retries one of its deliveries."""

    __tablename__ = "stopped_webhook_endpoints"

    endpoint: Mapped[str] = mapped_column(String(2000), primary_key=True)
    stopped_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
