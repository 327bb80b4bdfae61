"""The order as the shop sold it: events, orders, their tickets, and every barcode ever issued.

A ticket's state and holder change only through conditional updates; one holder name and one
e-mail address per event (on normalised keys) and one live barcode per ticket are constraints.
"""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from locales import DEFAULT_LANGUAGE
from storage.models.base import (
    Base,
    Money,
    UtcDateTime,
    Words,
    WordsValue,
    enum_column,
    sql_constant,
)
from storage.reads import search


class TicketState(enum.StrEnum):
    TO_ASSIGN = "to_assign"
    PENDING = "pending"
    COMPLETED = "completed"
    ON_RESALE = "on_resale"
    SOLD = "sold"
    EXCHANGED = "exchanged"


# Tickets that left the order (resold, or exchanged for a new one): no longer shown or counted.
GONE_STATES = (TicketState.SOLD, TicketState.EXCHANGED)


def not_gone(state: Any) -> Any:
    """``state`` (a tickets' state column) is not one of ``GONE_STATES``, the states written
    into the SQL: a list of bound values is an expanding parameter, which SQLAlchemy renders
    again at every run (a fifth of the CPU of the order screens' read, docs/performance.md)."""
    return state.not_in([sql_constant(gone) for gone in GONE_STATES])


class EntryCode(enum.StrEnum):
    """What a holder shows at the gate: a still QR of the barcode, or a live code that changes
    every ``entry_period_seconds`` (storage/entry_codes.py)."""

    STATIC = "static"
    ROTATING = "rotating"


DEFAULT_PERIOD_SECONDS = 15

DEFAULT_RETENTION_DAYS = 30


class Event(Base):
    __tablename__ = "events"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[WordsValue] = mapped_column(Words)
    starts_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    timezone: Mapped[str] = mapped_column(String(64))
    venue_name: Mapped[WordsValue] = mapped_column(Words)
    venue_city: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(String(3))
    faq_url: Mapped[str | None] = mapped_column(String(500))
    personalisation_enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    personalisation_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    resale_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    resale_min_price: Mapped[Decimal | None] = mapped_column(Money)
    # None means "at most the ticket's face value".
    resale_max_price: Mapped[Decimal | None] = mapped_column(Money)
    resale_deadline: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    exchange_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    exchange_targets: Mapped[list[str]] = mapped_column(JSON, default=list)
    exchange_capacity: Mapped[int | None] = mapped_column(Integer)
    # The import's ``reminders`` block (storage/services/reminders.py); None: the defaults.
    reminders: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The entry policy (the import's ``entry`` block): static or rotating codes, how long a
    # rotating code lives, and how many hours before the start it may first be shown.
    entry_code: Mapped[EntryCode] = mapped_column(enum_column(EntryCode, "entry_code"),
                                                  default=EntryCode.STATIC)
    entry_period_seconds: Mapped[int] = mapped_column(Integer, default=DEFAULT_PERIOD_SECONDS)
    entry_reveal_hours_before: Mapped[int | None] = mapped_column(Integer)

    # How many days after the event its orders' and tickets' personal data are removed
    # (storage/services/privacy.py, docs/privacy.md), and when that was done.
    retention_days: Mapped[int] = mapped_column(Integer, default=DEFAULT_RETENTION_DAYS,
                                                server_default=str(DEFAULT_RETENTION_DAYS))
    shredded_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (
        CheckConstraint("exchange_capacity IS NULL OR exchange_capacity >= 0", name="capacity"),
        CheckConstraint("entry_period_seconds BETWEEN 5 AND 300", name="entry_period"),
        CheckConstraint("entry_reveal_hours_before IS NULL OR entry_reveal_hours_before "
                        "BETWEEN 0 AND 720", name="entry_reveal"),
        CheckConstraint("retention_days >= 0", name="retention_days"),
    )


class Order(Base):
    __tablename__ = "orders"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    number: Mapped[str] = mapped_column(String(64), unique=True)
    buyer_name: Mapped[str] = mapped_column(String(200))
    buyer_email: Mapped[str] = mapped_column(String(254))
    language: Mapped[str] = mapped_column(String(8), default=DEFAULT_LANGUAGE)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # What staff's /find looks in, folded (storage/reads/search.py); filled on insert.
    search_key: Mapped[str] = mapped_column(String(search.SEARCH_COLUMN_LENGTH),
                                            default=search.order_search_default)

    tickets: Mapped[list[Ticket]] = relationship(
        back_populates="order", lazy="raise", order_by="Ticket.id"
    )


class Ticket(Base):
    """One admission. Its state and holder change only through conditional updates."""

    __tablename__ = "tickets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"))
    category: Mapped[WordsValue] = mapped_column(Words)
    price: Mapped[Decimal] = mapped_column(Money)
    state: Mapped[TicketState] = mapped_column(
        enum_column(TicketState, "ticket_state"), default=TicketState.TO_ASSIGN
    )
    holder_name: Mapped[str | None] = mapped_column(String(200))
    holder_email: Mapped[str | None] = mapped_column(String(254))
    holder_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    # Normalised keys behind the per-event uniqueness rule; NULL while unused (NULLs never
    # collide in a unique constraint, on SQLite and PostgreSQL alike).
    name_key: Mapped[str | None] = mapped_column(String(200))
    email_key: Mapped[str | None] = mapped_column(String(254))
    barcode: Mapped[str] = mapped_column(String(32), unique=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # When the ticket was first scanned in at the gate (storage/services/gate.py): a used ticket
    # changes no more (storage/services/ticket_changes.py, change_ticket).
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    # What staff's /find looks in, folded (storage/reads/search.py): the reference and the holder's
    # name and e-mail; filled on insert and by services.change_ticket.
    search_key: Mapped[str] = mapped_column(String(search.SEARCH_COLUMN_LENGTH),
                                            default=search.ticket_search_default)

    order: Mapped[Order] = relationship(back_populates="tickets", lazy="raise")
    event: Mapped[Event] = relationship(lazy="raise")

    __table_args__ = (
        UniqueConstraint("event_id", "name_key", name="uq_tickets_event_name"),
        UniqueConstraint("event_id", "email_key", name="uq_tickets_event_email"),
        Index("ix_tickets_order_id", "order_id"),
        Index("ix_tickets_holder_telegram_id", "holder_telegram_id"),
        CheckConstraint(
            "(state IN ('to_assign', 'sold', 'exchanged') AND name_key IS NULL "
            "AND email_key IS NULL) OR state IN ('pending', 'completed', 'on_resale')",
            name="keys_follow_state",
        ),
        CheckConstraint(
            "state != 'completed' OR (holder_name IS NOT NULL AND name_key IS NOT NULL)",
            name="completed_has_holder",
        ),
    )


class Barcode(Base):
    """Every barcode ever issued; a void one stays here so it is never issued again."""

    __tablename__ = "barcodes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    voided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())

    __table_args__ = (Index("ix_barcodes_ticket_id", "ticket_id"),)


for _table in (Order.__table__, Ticket.__table__):
    search.attach(_table)
