"""The resale market: a ticket listed for sale, and what became of the listing."""

from __future__ import annotations

import datetime as dt
import enum
from decimal import Decimal

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from storage.models.base import Base, Money, UtcDateTime, enum_column
from storage.models.orders import TicketState


class ListingState(enum.StrEnum):
    LISTED = "listed"
    CANCELLED = "cancelled"
    SOLD = "sold"


class ResaleListing(Base):
    """A ticket offered on the resale market. At most one listing per ticket is live, which a
    partial unique index guarantees on SQLite and PostgreSQL alike."""

    __tablename__ = "resale_listings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    price: Mapped[Decimal] = mapped_column(Money)
    currency: Mapped[str] = mapped_column(String(3))
    state: Mapped[ListingState] = mapped_column(
        enum_column(ListingState, "listing_state"), default=ListingState.LISTED
    )
    # The ticket's state before listing, restored when the sale is cancelled.
    previous_state: Mapped[TicketState] = mapped_column(enum_column(TicketState, "listed_from"))
    listed_by_telegram_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime())
    sold_price: Mapped[Decimal | None] = mapped_column(Money)

    __table_args__ = (
        Index(
            "uq_resale_listings_live_ticket",
            "ticket_id",
            unique=True,
            sqlite_where=text("state = 'listed'"),
            postgresql_where=text("state = 'listed'"),
        ),
        Index("ix_resale_listings_order_id", "order_id"),
        CheckConstraint("price >= 0", name="price_not_negative"),
    )
