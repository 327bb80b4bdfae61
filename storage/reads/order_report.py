"""An order as the ticket shop reads it back over the HTTP API: every ticket with its state,
holder and current barcode (none once the ticket left the order and its barcode is void)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, select

from storage.db.store import Store
from storage.errors import Refusal
from storage.models import (
    Barcode,
    Event,
    ListingState,
    Order,
    ResaleListing,
    Ticket,
    TicketState,
    WordsValue,
    sql_constant,
)
from storage.reads.listings import LiveListing


@dataclass(frozen=True)
class ReportedTicket:
    ref: str
    event_id: str
    event_name: WordsValue
    category: WordsValue
    price: Decimal
    state: TicketState
    holder_name: str | None
    holder_email: str | None
    barcode: str | None
    listing: LiveListing | None = None  # the live listing, while the ticket is on resale


@dataclass(frozen=True)
class OrderReport:
    number: str
    buyer_name: str
    buyer_email: str
    language: str
    tickets: tuple[ReportedTicket, ...]


async def order_report(store: Store, number: str) -> OrderReport:
    """The order with this number, or ``Refusal("not_found")``."""
    async with store.read() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
        if order is None:
            raise Refusal("not_found")
        rows = (
            await session.execute(
                select(Ticket, Event.name, Barcode.code, ResaleListing)
                .join(Event, Event.id == Ticket.event_id)
                .outerjoin(
                    Barcode, and_(Barcode.code == Ticket.barcode, Barcode.voided_at.is_(None))
                )
                .outerjoin(ResaleListing,
                           and_(ResaleListing.ticket_id == Ticket.id,
                                ResaleListing.state == sql_constant(ListingState.LISTED)))
                .where(Ticket.order_id == order.id)
                .order_by(Ticket.id)
            )
        ).all()
    return OrderReport(
        number=order.number,
        buyer_name=order.buyer_name,
        buyer_email=order.buyer_email,
        language=order.language,
        tickets=tuple(
            ReportedTicket(
                ref=ticket.ref,
                event_id=ticket.event_id,
                event_name=event_name,
                category=ticket.category,
                price=ticket.price,
                state=ticket.state,
                holder_name=ticket.holder_name,
                holder_email=ticket.holder_email,
                barcode=code,
                listing=(LiveListing.of(listing, ticket.ref, order.number, ticket.event_id)
                         if listing is not None else None),
            )
            for ticket, event_name, code, listing in rows
        ),
    )
