"""An event at a glance, for staff: its tickets by state and its personalisations per day
(``/stats``), and every ticket as CSV rows (``/export``, ``GET /api/events/{event}/tickets.csv``).

The export never holds an event's tickets in memory: it reads them by keyset pages (``id >
last``, ``LIMIT``) in short read transactions and hands out CSV text a page at a time, so a
million tickets stream in constant memory and no transaction stays open while a slow client
reads. A ticket that changes between two pages shows as it was when its page was read.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass

from sqlalchemy import Date, and_, case, cast, func, select

from locales import translator, words_in
from storage.db.store import Store, utcnow
from storage.errors import N_, Refusal
from storage.models import (
    GONE_STATES,
    ActorKind,
    AuditEntry,
    Event,
    Invitation,
    InvitationState,
    Order,
    Ticket,
    WordsValue,
)
from storage.services import audit

EXPORT_PAGE = 5000
BOM = "\ufeff"  # spreadsheet programs read the file as UTF-8 only with it
PERSONALISED = ("claimed_for_self", "invitation_accepted")

# The states staff see, in this order: "used" is a completed ticket scanned in at the gate.
REPORT_STATES = ("to_assign", "pending", "completed", "on_resale", "used")
STATE_WORDS = {
    "to_assign": N_("to assign"),
    "pending": N_("pending"),
    "completed": N_("completed"),
    "on_resale": N_("on resale"),
    "used": N_("used"),
    "sold": N_("sold"),
    "exchanged": N_("exchanged"),
}
COLUMNS = (N_("Reference"), N_("Order"), N_("Category"), N_("State"), N_("Holder"),
           N_("Invitation e-mail"), N_("Barcode"), N_("Scanned at"))


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
                                              Ticket.state.not_in(GONE_STATES))
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
                   Ticket.holder_name, Invitation.email, Ticket.barcode, Ticket.used_at)
            .join(Order, Order.id == Ticket.order_id)
            .outerjoin(Invitation, pending)
            .where(Ticket.event_id == event_id, Ticket.id > after)
            .order_by(Ticket.id).limit(size))).all()


async def ticket_csv(store: Store, event_id: str, language: str, *,
                     page: int = EXPORT_PAGE) -> AsyncIterator[str]:
    """The event's tickets as CSV text, a page of rows per piece, the first with the BOM
    and the header; categories and states in ``language``, times in the event's zone."""
    t = translator(language)
    async with store.read() as session:
        timezone = (await _event(session, event_id)).timezone
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write(BOM)
    writer.writerow([t.gettext(column) for column in COLUMNS])
    states = {state: t.gettext(words) for state, words in STATE_WORDS.items()}
    after = 0
    while True:
        rows = await _page(store, event_id, after, page)
        for _, ref, number, category, state, holder, email, barcode, used in rows:
            scanned = t.datetime(used, timezone) if used is not None else ""
            writer.writerow([ref, number, words_in(category, language),
                             states.get(str(state), str(state)), holder or "", email or "",
                             barcode, scanned])
        if rows:
            after = rows[-1][0]
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < page:
            return

