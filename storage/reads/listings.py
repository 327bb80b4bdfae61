"""The live resale listings, as the resale market reads them: one listing by its ticket (in an
order's report), and an event's live listings a page at a time, keyset-paged by listing id so
that a page costs the same however far the market has read."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from storage.db.store import Store
from storage.errors import Refusal
from storage.models import Event, ListingState, Order, ResaleListing, Ticket, sql_constant

MAX_PAGE = 500
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class LiveListing:
    """A ticket on offer: what the market needs to show it and to report it sold."""

    id: int
    ticket_ref: str
    order_number: str
    event_id: str
    price: Decimal
    currency: str
    listed_at: dt.datetime

    @classmethod
    def of(cls, listing: ResaleListing, ticket_ref: str, order_number: str,
           event_id: str) -> LiveListing:
        return cls(listing.id, ticket_ref, order_number, event_id, listing.price,
                   listing.currency, listing.created_at)


@dataclass(frozen=True)
class ListingPage:
    listings: tuple[LiveListing, ...]
    # The id to pass as ``after`` for the next page; None once this page was the last.
    next_after: int | None


_LIVE = (
    select(ResaleListing.id, Ticket.ref, Order.number, Ticket.event_id, ResaleListing.price,
           ResaleListing.currency, ResaleListing.created_at)
    .join(Ticket, Ticket.id == ResaleListing.ticket_id)
    .join(Order, Order.id == ResaleListing.order_id)
    .where(ResaleListing.state == sql_constant(ListingState.LISTED))
    .order_by(ResaleListing.id)
)


async def live_listings(store: Store, event_id: str, *, after: int = 0,
                        limit: int = DEFAULT_PAGE) -> ListingPage:
    """The event's live listings with an id above ``after``, at most ``limit``, oldest first;
    ``Refusal("event_not_found")`` for an event the store does not have."""
    async with store.read() as session:
        if await session.get(Event, event_id) is None:
            raise Refusal("staff_no_event", event=event_id[:64])
        rows = (await session.execute(
            _LIVE.where(Ticket.event_id == event_id, ResaleListing.id > after)
            .limit(limit + 1))).all()
    listings = tuple(LiveListing(*row) for row in rows[:limit])
    return ListingPage(listings, listings[-1].id if len(rows) > limit else None)
