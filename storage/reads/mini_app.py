"""What the Mini App's ticket and gate views read beyond the chat's views: a held ticket with
its gate entry, and the events a staff member may scan for.

The ticket itself comes from ``ticket_delivery.held_card``, the very check the chat's ticket
buttons make (completed, in this Telegram user's hands, its current barcode not void), so the
Mini App shows exactly what the chat would send. The gate entry is read next to it: a used
ticket still shows, marked as used.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import select, text

from storage.db.store import Store, utcnow
from storage.models import Event, GateScan, Ticket
from storage.reads.loading import event_view
from storage.reads.views import EventView
from storage.ticket_delivery import TicketCard, held_card


@dataclass(frozen=True)
class HeldTicketView:
    card: TicketCard
    used_at: dt.datetime | None = None
    gate: str | None = None  # where it was let in, when known


async def held_ticket(store: Store, telegram_id: int, ticket_id: int) -> HeldTicketView:
    """The ticket this user holds now, with when and where it was let in (if it was); refuses
    (``ticket_not_held``) any other ticket."""
    card = await held_card(store, telegram_id, ticket_id)
    async with store.read() as session:
        used_at = await session.scalar(select(Ticket.used_at).where(Ticket.id == ticket_id))
        gate = None
        if used_at is not None:
            gate = await session.scalar(
                select(GateScan.gate).where(GateScan.ticket_id == ticket_id,
                                            text("gate_scans.result = 'ok'")))
    return HeldTicketView(card, used_at, gate)


async def gate_events(store: Store, *,
                      since: dt.timedelta = dt.timedelta(days=2)) -> list[EventView]:
    """The events a gate may admit to: those not long past, soonest first."""
    async with store.read() as session:
        events = (await session.scalars(
            select(Event).where(Event.starts_at >= utcnow() - since)
            .order_by(Event.starts_at, Event.id))).all()
    return [event_view(event) for event in events]


async def event_of(store: Store, event_id: str) -> EventView | None:
    async with store.read() as session:
        event = await session.get(Event, event_id)
    return event_view(event) if event is not None else None
