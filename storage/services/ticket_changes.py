"""The steps every use case on a ticket takes: find the ticket the user manages, check that
names can still be changed, move the ticket out of the state it was seen in with a conditional
UPDATE (unique constraints reject a taken name or e-mail), and end the chat's input step in the
same transaction."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Any

from sqlalchemy import and_, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import chat_state
from storage.db.prepared import execute_in_session
from storage.errors import Refusal
from storage.models import (
    Event,
    Order,
    OrderAccess,
    Ticket,
    TicketState,
)
from storage.reads import loading as reading
from storage.reads import search

# Built once, with bound parameters (journal.py says why).
_MANAGED_TICKET = (
    select(Ticket, Event, Order)
    .join(Event, Event.id == Ticket.event_id)
    .join(Order, Order.id == Ticket.order_id)
    .join(OrderAccess, and_(OrderAccess.order_id == Order.id,
                            OrderAccess.telegram_id == bindparam("user")))
    .where(Ticket.id == bindparam("ticket"))
)


async def managed_ticket(
    session: AsyncSession, telegram_id: int, ticket_id: int
) -> tuple[Ticket, Event, Order]:
    row = (await session.execute(_MANAGED_TICKET, {"user": telegram_id, "ticket": ticket_id})
           ).first()
    if row is None:
        raise Refusal("not_found")
    return tuple(row)


def _require_personalisation(event: Event, now: dt.datetime) -> None:
    if not event.personalisation_enabled:
        raise Refusal("personalisation_off")
    if not reading.personalisation_open(event, now):
        raise Refusal("personalisation_closed", deadline=event.personalisation_deadline,
                      timezone=event.timezone)


async def change_ticket(
    session: AsyncSession, ticket: Ticket, expected: TicketState, now: dt.datetime,
    **values: Any,
) -> None:
    """Move a ticket out of ``expected`` state, or refuse if someone changed it first."""
    if "holder_name" in values or "holder_email" in values:
        values["search_key"] = search.search_key(
            ticket.ref, values.get("holder_name", ticket.holder_name),
            values.get("holder_email", ticket.holder_email))
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(ticket=ticket.id, expected=expected, version_seen=ticket.version, now=now)
    try:
        result = await execute_in_session(session, _ticket_change(tuple(sorted(values))),
                                          params)
    except IntegrityError as error:
        raise _uniqueness_refusal(error, values) from None
    if result.rowcount != 1:
        used = await session.scalar(select(Ticket.used_at).where(Ticket.id == ticket.id))
        raise Refusal("ticket_used" if used is not None else "ticket_changed")


@functools.cache
def _ticket_change(columns: tuple[str, ...]):
    """The conditional update of a ticket setting ``columns`` (a handful of combinations)."""
    return (
        update(Ticket.__table__)
        .where(Ticket.id == bindparam("ticket"), Ticket.state == bindparam("expected"),
               Ticket.version == bindparam("version_seen"),
               # Scanned in at the gate: nothing about it changes any more.
               Ticket.used_at.is_(None))
        .values(version=Ticket.version + 1, updated_at=bindparam("now"),
                **{name: bindparam(f"new_{name}") for name in columns})
    )


def _uniqueness_refusal(error: IntegrityError, values: dict[str, Any]) -> Refusal:
    text = str(error.orig)
    if "uq_tickets_event_name" in text or "tickets.event_id, tickets.name_key" in text:
        return Refusal("name_taken", name=values.get("holder_name", ""))
    if "uq_tickets_event_email" in text or "tickets.event_id, tickets.email_key" in text:
        return Refusal("email_taken", email=values.get("holder_email", ""))
    raise error


async def _end_step(session: AsyncSession, chat_id: int | None) -> None:
    # First, so that a refusal rolls it back with the rest: the user may try the step again.
    if chat_id is not None:
        await chat_state.end_step(session, chat_id)
