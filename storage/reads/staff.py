"""What support staff see: an order's full status (every ticket, whatever its state, and its
recent changes), the orders a search found, a ticket's audit history, and how a status is read.

Only reads: the lookups that show these, and audit them, are staff's use cases
(``storage/services/staff.py``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import (
    ActorKind,
    AuditEntry,
    GateScan,
    Order,
    ScanResult,
    Ticket,
    TicketState,
    WordsValue,
    sql_constant,
)
from storage.reads import loading as reading

RECENT_CHANGES = 10
# Lookups are audited too, but they change nothing: the "recent changes" of a status skip them.
LOOKUP_ACTIONS = ("staff_viewed", "staff_viewed_history", "staff_searched")


@dataclass(frozen=True)
class AuditLine:
    at: dt.datetime
    actor_kind: ActorKind
    actor_telegram_id: int | None
    action: str
    ticket_ref: str | None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingInvitation:
    email: str
    created_at: dt.datetime
    last_sent_at: dt.datetime
    expires_at: dt.datetime


@dataclass(frozen=True)
class LiveListing:
    id: int
    price: Decimal
    currency: str
    listed_at: dt.datetime


@dataclass(frozen=True)
class StaffTicket:
    id: int
    ref: str
    category: WordsValue
    event_name: WordsValue
    state: TicketState
    holder_name: str | None
    holder_email: str | None
    holder_telegram_id: int | None
    invitation: PendingInvitation | None
    listing: LiveListing | None
    used_at: dt.datetime | None = None  # scanned in at the gate
    # Let in more than once (offline devices): every gate that let it in, first entry first.
    entry_gates: tuple[str, ...] = ()


@dataclass(frozen=True)
class OrderStatus:
    """An order as support sees it: every ticket, whatever its state, and recent changes."""

    id: int
    number: str
    buyer_name: str
    buyer_email: str
    language: str
    # The time zone of the order's first event: every time of the status is shown in it.
    timezone: str
    tickets: tuple[StaffTicket, ...]
    recent_changes: tuple[AuditLine, ...]


@dataclass(frozen=True)
class OrderMatch:
    id: int
    number: str
    buyer_name: str
    buyer_email: str
    ticket_count: int


@dataclass(frozen=True)
class FoundOrders:
    orders: tuple[OrderMatch, ...]
    more: bool  # more orders match than were returned


@dataclass(frozen=True)
class TicketHistory:
    ticket_id: int
    ref: str
    order_number: str
    timezone: str
    entries: tuple[AuditLine, ...]  # oldest first
    truncated: bool  # older entries were left out


def audit_line(entry: AuditEntry, ref: str | None) -> AuditLine:
    return AuditLine(
        at=entry.at,
        actor_kind=entry.actor_kind,
        actor_telegram_id=entry.actor_telegram_id,
        action=entry.action,
        ticket_ref=ref,
        details=dict(entry.details or {}),
    )


async def _double_entries(session: AsyncSession, ticket_ids: list[int]) -> dict[int, list[str]]:
    """The gates that let each of these tickets in, for the tickets let in more than once."""
    rows = await session.execute(
        select(GateScan.ticket_id, GateScan.gate, GateScan.conflict)
        .where(GateScan.ticket_id.in_(ticket_ids),
               (GateScan.result == sql_constant(ScanResult.OK)) | GateScan.conflict)
        .order_by(GateScan.ticket_id, GateScan.conflict, GateScan.at))
    gates: dict[int, list[str]] = {}
    conflicted = set()
    for ticket_id, gate, conflict in rows:
        gates.setdefault(ticket_id, []).append(gate)
        if conflict:
            conflicted.add(ticket_id)
    return {ticket_id: gates[ticket_id] for ticket_id in conflicted}


async def load_status(session: AsyncSession, order: Order) -> OrderStatus:
    rows = await reading.ticket_rows(session, order.id, with_gone=True)
    doubles = await _double_entries(session, [ticket.id for ticket, *_ in rows])
    tickets = tuple(
        StaffTicket(
            id=ticket.id,
            ref=ticket.ref,
            category=ticket.category,
            event_name=event.name,
            state=ticket.state,
            holder_name=ticket.holder_name,
            holder_email=ticket.holder_email,
            holder_telegram_id=ticket.holder_telegram_id,
            used_at=ticket.used_at,
            entry_gates=tuple(doubles.get(ticket.id, ())),
            invitation=(
                PendingInvitation(
                    invitation.email,
                    invitation.created_at,
                    invitation.last_sent_at,
                    invitation.expires_at,
                )
                if invitation is not None
                else None
            ),
            listing=(
                LiveListing(listing.id, listing.price, listing.currency, listing.created_at)
                if listing is not None
                else None
            ),
        )
        for ticket, event, invitation, listing in rows
    )
    first_event = min(
        (event for _, event, _, _ in rows),
        key=lambda event: (event.starts_at, event.id),
        default=None,
    )
    changes = (
        await session.execute(
            select(AuditEntry, Ticket.ref)
            .outerjoin(Ticket, Ticket.id == AuditEntry.ticket_id)
            .where(AuditEntry.order_id == order.id, AuditEntry.action.not_in(LOOKUP_ACTIONS))
            .order_by(AuditEntry.id.desc())
            .limit(RECENT_CHANGES)
        )
    ).all()
    return OrderStatus(
        id=order.id,
        number=order.number,
        buyer_name=order.buyer_name,
        buyer_email=order.buyer_email,
        language=order.language,
        timezone=first_event.timezone if first_event is not None else "UTC",
        tickets=tickets,
        recent_changes=tuple(audit_line(entry, ref) for entry, ref in changes),
    )
