"""Resale: list a ticket at a price within its event's bounds, change the price, cancel, and
complete the sale when the resale market reports it sold.

The bounds (by default at most the face value) are checked when listing, when the price
changes and again when the sale completes. A partial unique index allows one live listing per
ticket; the ticket's state moves with conditional updates like everywhere else.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from babel.numbers import get_currency_precision
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import (
    ActorKind,
    Event,
    ListingState,
    ResaleListing,
    Ticket,
    TicketState,
    sql_constant,
)
from storage.reads import loading as reading
from storage.reads.views import EventView, TicketView
from storage.services import (
    audit,
    change_ticket,
    managed_ticket,
    notify_order_managers,
    void_barcode,
)
from storage.services.ticket_changes import _end_step
from storage.webhook_outbox import announce_listing

LISTABLE = (TicketState.TO_ASSIGN, TicketState.COMPLETED)


@dataclass(frozen=True)
class PriceBounds:
    minimum: Decimal
    maximum: Decimal
    currency: str


@dataclass(frozen=True)
class SaleCompleted:
    listing_id: int
    ticket_ref: str
    order_id: int
    price: Decimal
    currency: str


def price_bounds(event: Event | EventView, ticket: Ticket | TicketView) -> PriceBounds:
    """What the event allows: its minimum (else 0), its maximum (else the face value). Takes
    the rows or, for a screen that read them already, their views."""
    maximum = event.resale_max_price if event.resale_max_price is not None else ticket.price
    minimum = event.resale_min_price if event.resale_min_price is not None else Decimal("0")
    return PriceBounds(minimum, maximum, event.currency)


def check_price(price: Decimal, bounds: PriceBounds) -> Decimal:
    """The price if the event allows it, else a refusal that states the range."""
    params = {"min": bounds.minimum, "max": bounds.maximum, "currency": bounds.currency}
    if not price.is_finite() or price < 0:
        raise Refusal("price_invalid", **params)
    places = get_currency_precision(bounds.currency)
    try:
        rounded = price.quantize(Decimal(1).scaleb(-places))
    except InvalidOperation:  # more digits than decimal arithmetic holds ("1E26")
        raise Refusal("price_invalid", **params) from None
    if price != rounded:
        raise Refusal("price_too_precise", places=places, **params)
    if not bounds.minimum <= price <= bounds.maximum:
        raise Refusal("price_out_of_bounds", **params)
    return price


def require_resale(event: Event, now: dt.datetime) -> None:
    if not event.resale_enabled:
        raise Refusal("resale_off", faq=event.faq_url or "")
    if not reading.resale_open(event, now):
        raise Refusal("resale_closed", deadline=event.resale_deadline, timezone=event.timezone)


async def resale_bounds(store: Store, telegram_id: int, ticket_id: int) -> PriceBounds:
    """The price range the buyer may ask for this ticket."""
    async with store.read() as session:
        ticket, event, _order = await managed_ticket(session, telegram_id, ticket_id)
        return price_bounds(event, ticket)


async def _live_listing(session: AsyncSession, ticket_id: int) -> ResaleListing:
    listing = await session.scalar(
        select(ResaleListing).where(ResaleListing.ticket_id == ticket_id,
                                    ResaleListing.state == sql_constant(ListingState.LISTED))
    )
    if listing is None:
        raise Refusal("listing_not_live")
    return listing


async def list_for_resale(store: Store, telegram_id: int, ticket_id: int,
                          price: Decimal, *, chat_id: int | None = None) -> int:
    """Offer the ticket for resale at ``price``; returns the listing id. ``chat_id``: the chat
    whose input step this completes, ended in the same transaction."""
    now = utcnow()
    async with store.write() as session:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        require_resale(event, now)
        if ticket.state == TicketState.PENDING:
            raise Refusal("resale_pending_invitation")
        if ticket.state not in LISTABLE:
            raise Refusal("not_listable")
        check_price(price, price_bounds(event, ticket))
        await change_ticket(session, ticket, ticket.state, now, state=TicketState.ON_RESALE)
        listing = ResaleListing(
            ticket_id=ticket.id, order_id=order.id, price=price, currency=event.currency,
            previous_state=ticket.state, listed_by_telegram_id=telegram_id, created_at=now,
            updated_at=now,
        )
        session.add(listing)
        try:
            await session.flush()
        except IntegrityError:
            raise Refusal("ticket_changed") from None
        await audit(session, ActorKind.BUYER, telegram_id, "listed_for_resale", order_id=order.id,
                    ticket_id=ticket.id, now=now, listing_id=listing.id, price=str(price))
        await announce_listing(session, "listing.created", listing_id=listing.id, ticket=ticket,
                               price=price, currency=listing.currency, now=now)
        return listing.id


async def change_price(store: Store, telegram_id: int, ticket_id: int, price: Decimal, *,
                       chat_id: int | None = None) -> None:
    """The live listing's new price. ``chat_id``: the chat whose input step this completes,
    ended in the same transaction."""
    now = utcnow()
    async with store.write() as session:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        require_resale(event, now)
        listing = await _live_listing(session, ticket.id)
        check_price(price, price_bounds(event, ticket))
        result = await session.execute(
            update(ResaleListing)
            .where(ResaleListing.id == listing.id,
                   ResaleListing.state == sql_constant(ListingState.LISTED))
            .values(price=price, updated_at=now)
        )
        if result.rowcount != 1:
            raise Refusal("listing_not_live")
        await audit(session, ActorKind.BUYER, telegram_id, "resale_price_changed",
                    order_id=order.id,
                    ticket_id=ticket.id, now=now, listing_id=listing.id, old=str(listing.price),
                    new=str(price))
        await announce_listing(session, "listing.updated", listing_id=listing.id, ticket=ticket,
                               price=price, currency=listing.currency, now=now)


async def cancel_sale(store: Store, telegram_id: int, ticket_id: int) -> None:
    """Take the ticket off the market; it comes back as it was."""
    now = utcnow()
    async with store.write() as session:
        ticket, _event, order = await managed_ticket(session, telegram_id, ticket_id)
        listing = await _finish_listing(session, ticket.id, ListingState.CANCELLED, now)
        await change_ticket(session, ticket, TicketState.ON_RESALE, now,
                            state=listing.previous_state)
        await audit(session, ActorKind.BUYER, telegram_id, "resale_cancelled", order_id=order.id,
                    ticket_id=ticket.id, now=now, listing_id=listing.id)
        await announce_listing(session, "listing.cancelled", listing_id=listing.id,
                               ticket=ticket, price=listing.price, currency=listing.currency,
                               now=now)


async def _finish_listing(session: AsyncSession, ticket_id: int, state: ListingState,
                          now: dt.datetime, **values) -> ResaleListing:
    listing = await _live_listing(session, ticket_id)
    result = await session.execute(
        update(ResaleListing)
        .where(ResaleListing.id == listing.id,
               ResaleListing.state == sql_constant(ListingState.LISTED))
        .values(state=state, finished_at=now, updated_at=now, **values)
    )
    if result.rowcount != 1:
        raise Refusal("listing_not_live")
    return listing


async def complete_sale(store: Store, listing_id: int, *,
                        price: Decimal | None = None) -> SaleCompleted:
    """The market sold the ticket: it leaves the order, its barcode is void, the buyer is told.
    ``price`` is what the market reports (default: the listed price); the bounds apply again."""
    now = utcnow()
    async with store.write() as session:
        listing = await session.get(ResaleListing, listing_id)
        if listing is None:
            raise Refusal("listing_not_found")
        if listing.state != ListingState.LISTED:
            raise Refusal("listing_not_live")
        ticket = await session.get(Ticket, listing.ticket_id)
        event = await session.get(Event, ticket.event_id)
        sold_price = check_price(price if price is not None else listing.price,
                                 price_bounds(event, ticket))
        await _finish_listing(session, ticket.id, ListingState.SOLD, now, sold_price=sold_price)
        await change_ticket(session, ticket, TicketState.ON_RESALE, now, state=TicketState.SOLD,
                            holder_name=None, name_key=None, holder_email=None, email_key=None,
                            holder_telegram_id=None)
        await void_barcode(session, ticket.barcode, now)
        await audit(session, ActorKind.SYSTEM, None, "resale_sold", order_id=ticket.order_id,
                    ticket_id=ticket.id, now=now, listing_id=listing.id, price=str(sold_price))
        await announce_listing(session, "listing.sold", listing_id=listing.id, ticket=ticket,
                               price=sold_price, currency=listing.currency, now=now)
        await notify_order_managers(session, ticket.order_id, "resale_sold", now,
                                    ticket_ref=ticket.ref, price=str(sold_price),
                                    currency=listing.currency)
        return SaleCompleted(listing.id, ticket.ref, ticket.order_id, sold_price,
                             listing.currency)
