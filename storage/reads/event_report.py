"""An event at a glance, for staff: its tickets by state and its personalisations per day
(``/stats``), and every ticket a page of rows at a time (for ``/export`` and ``GET
/api/events/{event}/tickets.csv``, which the presentation room puts into words as CSV).

The export never holds an event's tickets in memory: it reads them by keyset pages (``id >
last``, ``LIMIT``) in short read transactions and hands out CSV text a page at a time, so a
million tickets stream in constant memory and no transaction stays open while a slow client
reads. A ticket that changes between two pages shows as it was when its page was read.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Date, and_, case, cast, func, select

from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import (
    ActorKind,
    AuditEntry,
    Event,
    Invitation,
    InvitationState,
    Order,
    Ticket,
    WordsValue,
    not_gone,
)
from storage.services import audit

EXPORT_PAGE = 5000
PERSONALISED = ("claimed_for_self", "invitation_accepted")

# The states staff see, in this order: "used" is a completed ticket scanned in at the gate.
REPORT_STATES = ("to_assign", "pending", "completed", "on_resale", "used")

@dataclass(frozen=True)
class EventFigures:
    """What ``/stats`` shows: tickets by state and personalisations per day (UTC days)."""

    event_id: str
    name: WordsValue
    timezone: str
    states: dict[str, int]
    per_day: tuple[tuple[dt.date, int], ...]

    @property
    def total(self) -> int:
        return sum(self.states.values())


def _shown_state():
    return case((Ticket.used_at.is_not(None), "used"), else_=Ticket.state)


@dataclass(frozen=True)
class ExportRow:
    """One ticket as the export shows it; ``state`` is one of REPORT_STATES, sold or exchanged."""

    id: int
    ref: str
    order_number: str
    category: WordsValue
    state: str
    holder_name: str | None
    invitation_email: str | None
    barcode: str
    used_at: dt.datetime | None
    price: Decimal


@dataclass(frozen=True)
class EventChoice:
    """An event as staff choose it for a report: its id and its name."""

    event_id: str
    name: WordsValue


async def event_choices(store: Store) -> list[EventChoice]:
    """Every event, soonest first (then by id: the same order on every read), so that a
    report command without an argument can offer them; its buttons name an event by its place
    in this list, read again on the press."""
    async with store.read() as session:
        rows = await session.execute(select(Event.id, Event.name)
                                     .order_by(Event.starts_at, Event.id))
        return [EventChoice(event_id, name) for event_id, name in rows]


async def _event(session, event_id: str) -> Event:
    event = await session.get(Event, event_id)
    if event is None:
        raise Refusal("staff_no_event", event=event_id[:64])
    return event


async def event_figures(store: Store, staff_id: int, event_id: str) -> EventFigures:
    """The event's figures; the lookup is audited."""
    async with store.write() as session:
        event = await _event(session, event_id)
        state = _shown_state()
        counts = dict((await session.execute(
            select(state, func.count()).where(Ticket.event_id == event_id,
                                              not_gone(Ticket.state))
            .group_by(state))).all())
        day = (func.date(AuditEntry.at) if store.is_sqlite
               else cast(func.timezone("UTC", AuditEntry.at), Date))
        per_day = (await session.execute(
            select(day, func.count()).join(Ticket, Ticket.id == AuditEntry.ticket_id)
            .where(Ticket.event_id == event_id, AuditEntry.action.in_(PERSONALISED))
            .group_by(day).order_by(day))).all()
        await audit(session, ActorKind.STAFF, staff_id, "staff_viewed_stats", now=utcnow(),
                    event=event_id)
    return EventFigures(
        event_id, event.name, event.timezone,
        {name: counts.get(name, 0) for name in REPORT_STATES},
        tuple((value if isinstance(value, dt.date) else dt.date.fromisoformat(value), count)
              for value, count in per_day))


async def audit_export(store: Store, staff_id: int | None, event_id: str) -> None:
    """Refuse an unknown event, and write down who exported it (None: the shop's API)."""
    async with store.write() as session:
        await _event(session, event_id)
        await audit(session, ActorKind.STAFF if staff_id is not None else ActorKind.SYSTEM,
                    staff_id, "staff_exported", now=utcnow(), event=event_id)


async def _page(store: Store, event_id: str, after: int, size: int) -> list:
    pending = and_(Invitation.ticket_id == Ticket.id,
                   Invitation.state == InvitationState.PENDING)
    async with store.read() as session:
        return (await session.execute(
            select(Ticket.id, Ticket.ref, Order.number, Ticket.category, _shown_state(),
                   Ticket.holder_name, Invitation.email, Ticket.barcode, Ticket.used_at,
                   Ticket.price)
            .join(Order, Order.id == Ticket.order_id)
            .outerjoin(Invitation, pending)
            .where(Ticket.event_id == event_id, Ticket.id > after)
            .order_by(Ticket.id).limit(size))).all()


async def event_timezone(store: Store, event_id: str) -> str:
    """The time zone the export's times are shown in; refuses an unknown event."""
    async with store.read() as session:
        return (await _event(session, event_id)).timezone


async def ticket_pages(store: Store, event_id: str, *,
                       page: int = EXPORT_PAGE) -> AsyncIterator[list[ExportRow]]:
    """The event's tickets by id, ``page`` rows at a time, each page read in its own short
    transaction; the last page read is shorter than ``page`` (it may be empty)."""
    after = 0
    while True:
        rows = [ExportRow(*row) for row in await _page(store, event_id, after, page)]
        if rows:
            after = rows[-1].id
        yield rows
        if len(rows) < page:
            return
