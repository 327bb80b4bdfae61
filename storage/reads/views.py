"""Plain, immutable pictures of orders and tickets that services hand to the chat layer.

They carry data only; the chat layer decides how to say it. Loading them never leaves lazy
attributes behind, so rendering does no I/O.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from storage.models import TicketState, WordsValue


@dataclass(frozen=True)
class EventView:
    """An event; its name and venue name as the import gave them (one string, or texts by
    language): the chat layer shows them in the viewer's language (``Translator.words``)."""

    id: str
    name: WordsValue
    starts_at: dt.datetime
    timezone: str
    venue_name: WordsValue
    venue_city: str
    currency: str
    faq_url: str | None
    personalisation_enabled: bool
    personalisation_deadline: dt.datetime | None
    resale_enabled: bool
    exchange_enabled: bool
    resale_deadline: dt.datetime | None = None
    exchange_targets: tuple[str, ...] = ()
    # The resale price range (None: from 0, up to the face value), so that a screen that
    # shows a ticket also knows what it may be sold for without reading it again.
    resale_min_price: Decimal | None = None
    resale_max_price: Decimal | None = None
    # The entry policy: "static" or "rotating" codes, and a rotating code's period.
    entry_code: str = "static"
    entry_period_seconds: int = 15


@dataclass(frozen=True)
class ListingView:
    id: int
    price: Decimal
    currency: str


@dataclass(frozen=True)
class ExchangeOption:
    """A session the ticket may be exchanged for, and how many places it has left."""

    event: EventView
    places_left: int | None  # None: no limit


@dataclass(frozen=True)
class InvitationView:
    id: int
    email: str
    created_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class TicketView:
    id: int
    ref: str
    event_id: str
    category: WordsValue
    price: Decimal
    state: TicketState
    holder_name: str | None
    version: int
    invitation: InvitationView | None = None
    holder_telegram_id: int | None = None  # who holds it in Telegram (may show its QR)
    listing: ListingView | None = None
    # What the buyer may do with it now, in menu order (see reading.ticket_actions).
    actions: tuple[str, ...] = ()
    # When it was scanned in at the gate; a used ticket offers no action any more.
    used_at: dt.datetime | None = None


@dataclass(frozen=True)
class OrderView:
    id: int
    number: str
    buyer_name: str
    buyer_email: str
    language: str
    events: dict[str, EventView]
    tickets: tuple[TicketView, ...]
    # The language the viewing user chose (None: none, or read for staff), read with the order
    # so that answering in it costs no second query.
    viewer_language: str | None = None

    def tickets_in(self, state: TicketState) -> list[TicketView]:
        return [t for t in self.tickets if t.state == state]


@dataclass(frozen=True)
class TicketDetails:
    """One ticket with its order and event, for the ticket menu."""

    order: OrderView
    ticket: TicketView
    event: EventView


@dataclass(frozen=True)
class ClaimView:
    """What a friend sees on opening a claim link."""

    invitation_id: int
    inviter_name: str
    email: str
    expires_at: dt.datetime
    event: EventView
    category: WordsValue
    ticket_ref: str
    # The language the viewing friend chose (None: none), read with their right to see it.
    viewer_language: str | None = None


@dataclass(frozen=True)
class OrderSummary:
    id: int
    number: str
    ticket_count: int
    events: tuple[EventView, ...]


@dataclass(frozen=True)
class HeldTicket:
    ref: str
    category: WordsValue
    holder_name: str
    event: EventView
    id: int = 0


@dataclass(frozen=True)
class Home:
    """What ``/start`` without a link shows: the orders one manages and the tickets one holds."""

    orders: tuple[OrderSummary, ...] = ()
    held: tuple[HeldTicket, ...] = ()


@dataclass(frozen=True)
class UserView:
    telegram_id: int
    chosen_language: str | None
    telegram_language: str | None


@dataclass(frozen=True)
class ChatStep:
    """Where a chat stands in an input flow."""

    step: str
    ticket_id: int | None = None
    invitation_id: int | None = None
    payload: dict = field(default_factory=dict)
    message_id: int | None = None
    expired: bool = False  # read past its expiry (chat_state.get_step with_expired)


@dataclass(frozen=True)
class InviteResult:
    invitation_id: int
    email: str
    claim_token: str


@dataclass(frozen=True)
class LinkOpened:
    """A ``/start`` parameter resolved to either an order or a claim."""

    order_id: int | None = None
    claim: ClaimView | None = None
    # The language the user chose, read with the link so that answering costs no query.
    viewer_language: str | None = None
