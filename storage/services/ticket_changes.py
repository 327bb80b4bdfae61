"""The steps every use case on a ticket takes: find the ticket the user manages, check that
names can still be changed, move the ticket out of the state it was seen in with a conditional
UPDATE (unique constraints reject a taken name or e-mail), and end the chat's input step in the
same transaction."""

from __future__ import annotations

import datetime as dt
import functools
from types import SimpleNamespace
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

# Built once, with bound parameters (journal.py says why); read as namespaces of every column
# (``reading.records`` says why).
_MANAGED_PARTS: reading.Parts = (("t_", Ticket.__table__), ("e_", Event.__table__),
                                 ("o_", Order.__table__))
_tickets, _events, _orders, _access = (Ticket.__table__, Event.__table__, Order.__table__,
                                       OrderAccess.__table__)
_MANAGED_TICKET = (
    select(*reading.record_columns(_MANAGED_PARTS))
    .select_from(_tickets.join(_events, _events.c.id == _tickets.c.event_id)
                 .join(_orders, _orders.c.id == _tickets.c.order_id)
                 .join(_access, and_(_access.c.order_id == _orders.c.id,
                                     _access.c.telegram_id == bindparam("user"))))
    .where(_tickets.c.id == bindparam("ticket"))
)

_USED_AT = select(_tickets.c.used_at).where(_tickets.c.id == bindparam("ticket"))


async def managed_ticket(
    session: AsyncSession, telegram_id: int, ticket_id: int
) -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace]:
    """The ticket, its event and its order, if this user manages the order: namespaces of
    their columns. ``not_found`` otherwise, as if there were no such ticket."""
    found = await execute_in_session(session, _MANAGED_TICKET,
                                     {"user": telegram_id, "ticket": ticket_id})
    parts = reading.records(found.first(), _MANAGED_PARTS)
    if parts is None:
        raise Refusal("not_found")
    ticket, event, order = parts
    return ticket, event, order


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
        used = (await execute_in_session(session, _USED_AT, {"ticket": ticket.id})).scalar()
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
