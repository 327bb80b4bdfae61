"""Exchange: swap a ticket for one of another session that its event lists as an exchange
target, while the target's places for exchanges last.

The last place is settled by the database: the target's remaining capacity is decremented with
``UPDATE … WHERE exchange_capacity > 0`` (a CHECK keeps it from going negative), so two buyers
racing for it cannot both win.

The new ticket carries the target's category label, not the old one. Events have no category of
their own (categories come with the tickets of the import), so the label is the one the target's
own tickets use: a category of the same name if the target sells one ("VIP" on both days), else
the category of the target's tickets at the same price (the same pass on another day: "Pass
samedi" → "Pass dimanche"), else the target's first imported category. Only a target with no
ticket at all keeps the old label, as nothing better is known of it.

Its price is that category's face value in the target (what its tickets of that category cost;
the old price only where nothing better is known), so the PDF, the CSV, the API and the resale
bounds all speak of the ticket in hand, not of the one it replaced; what the buyer paid stays
on the order, the shop's business. Its reference is the old one with ``-E1`` (``-E2`` for an
exchange of an exchange, …): recognisably the same line of the order, one reference per ticket.

When the old ticket was in someone's name, its holder is e-mailed that it is no longer valid
(the mail ``ticket_void``, queued in the exchange's own transaction).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence
from decimal import Decimal

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage import barcode_feed
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import (
    ActorKind,
    Event,
    Order,
    OutboxMail,
    Ticket,
    TicketState,
    WordsValue,
)
from storage.reads import loading as reading
from storage.reads.views import EventView, ExchangeOption, TicketDetails, TicketView
from storage.services import audit, change_ticket, managed_ticket, new_barcode, void_barcode
from storage.services.language import _language_of
from storage.webhook_outbox import announce_exchange

EXCHANGEABLE = (TicketState.TO_ASSIGN, TicketState.COMPLETED)


def _require_exchange(event: Event | EventView, ticket: Ticket | TicketView, now) -> None:
    if not event.exchange_enabled or not event.exchange_targets:
        raise Refusal("exchange_off")
    if not reading.exchange_open(event, now):
        raise Refusal("exchange_closed")
    if ticket.state not in EXCHANGEABLE:
        raise Refusal("not_exchangeable")


async def exchange_options(store: Store, telegram_id: int,
                           ticket_id: int) -> list[ExchangeOption]:
    """The sessions this ticket may be exchanged for, in the event's order, with places left."""
    now = utcnow()
    async with store.read() as session:
        ticket, event, _order = await managed_ticket(session, telegram_id, ticket_id)
        _require_exchange(event, ticket, now)
        return await _options(session, event.exchange_targets, now)


async def exchange_options_of(store: Store, details: TicketDetails) -> list[ExchangeOption]:
    """The same for a ticket a screen read already loaded (its access checked there, its
    event's rules in hand): only the target sessions are read."""
    now = utcnow()
    _require_exchange(details.event, details.ticket, now)
    async with store.read() as session:
        return await _options(session, details.event.exchange_targets, now)


async def _options(session: AsyncSession, target_ids: Sequence[str],
                   now: dt.datetime) -> list[ExchangeOption]:
    targets = {
        target.id: target
        for target in await session.scalars(select(Event).where(Event.id.in_(target_ids)))
    }
    return [
        ExchangeOption(reading.event_view(targets[target_id]),
                       targets[target_id].exchange_capacity)
        for target_id in target_ids
        if target_id in targets and now < targets[target_id].starts_at
    ]


async def exchange_ticket(store: Store, telegram_id: int, ticket_id: int,
                          target_event_id: str) -> int:
    """Swap the ticket for a new one of the target session; returns the new ticket's id.
    The old ticket and its barcode are void; any personalisation is cleared."""
    now = utcnow()
    async with store.write() as session:
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        _require_exchange(event, ticket, now)
        if target_event_id not in (event.exchange_targets or ()):
            raise Refusal("exchange_target_invalid")
        target = await session.get(Event, target_event_id)
        if target is None or now >= target.starts_at:
            raise Refusal("exchange_target_invalid")
        taken = await session.execute(
            update(Event)
            .where(Event.id == target.id,
                   or_(Event.exchange_capacity.is_(None), Event.exchange_capacity > 0))
            .values(exchange_capacity=Event.exchange_capacity - 1)
        )
        if taken.rowcount != 1:
            raise Refusal("exchange_sold_out", event=target.name)
        old_holder = (ticket.holder_name, ticket.holder_email, ticket.holder_telegram_id)
        await change_ticket(session, ticket, ticket.state, now, state=TicketState.EXCHANGED,
                            holder_name=None, name_key=None, holder_email=None,
                            email_key=None, holder_telegram_id=None)
        await void_barcode(session, ticket.barcode, now)
        replacement = await _issue_replacement(session, ticket, target, now)
        await _tell_old_holder(session, ticket, order, old_holder, now)
        await audit(session, ActorKind.BUYER, telegram_id, "exchanged", order_id=order.id,
                    ticket_id=ticket.id, now=now, target_event=target.id,
                    new_ticket=replacement.ref)
        await announce_exchange(session, ticket, replacement, now)
        return replacement.id


_GENERATION = re.compile(r"^(?P<line>.+)-E(?P<n>[1-9][0-9]*)$")


def exchanged_ref(ref: str) -> str:
    """The reference of the ticket an exchange issues for ``ref``: ``T-1-E1``, then ``T-1-E2``."""
    found = _GENERATION.match(ref)
    line, generation = (found["line"], int(found["n"])) if found else (ref, 0)
    suffix = f"-E{generation + 1}"
    return line[:64 - len(suffix)] + suffix


async def _issue_replacement(session, ticket: Ticket, target: Event, now) -> Ticket:
    code = new_barcode()
    category, price = await target_category_and_price(session, ticket, target.id)
    replacement = Ticket(
        ref=exchanged_ref(ticket.ref), order_id=ticket.order_id, event_id=target.id,
        category=category, price=price,
        state=TicketState.TO_ASSIGN, barcode=code, updated_at=now,
    )
    session.add(replacement)
    await session.flush()
    await barcode_feed.issue(session, replacement, code, now)
    return replacement


async def _tell_old_holder(session: AsyncSession, ticket: Ticket, order: Order,
                           holder: tuple[str | None, str | None, int | None],
                           now: dt.datetime) -> None:
    """Queue the mail telling the old ticket's holder (if it had one with an address) that the
    ticket in their mailbox is no longer valid, in the language they read."""
    name, email, telegram_id = holder
    if not email:
        return
    language = (await _language_of(session, telegram_id, order) if telegram_id is not None
                else order.language)
    session.add(OutboxMail(
        message_id=f"<void{ticket.id}.{secrets.token_hex(6)}@ticketbot.local>",
        recipient=email, language=language, kind="ticket_void",
        params={"ticket_id": ticket.id, "holder": name or ""}, created_at=now,
        next_attempt_at=now))


_tickets = Ticket.__table__
_SAME_NAME = (select(_tickets.c.category, _tickets.c.price)
              .where(_tickets.c.event_id == bindparam("target"),
                     _tickets.c.category == bindparam("category"))
              .order_by(_tickets.c.id).limit(1))
_SAME_PRICE = (select(_tickets.c.category, _tickets.c.price)
               .where(_tickets.c.event_id == bindparam("target"),
                      _tickets.c.price == bindparam("price"))
               .order_by(_tickets.c.id).limit(1))
_FIRST = (select(_tickets.c.category, _tickets.c.price)
          .where(_tickets.c.event_id == bindparam("target"))
          .order_by(_tickets.c.id).limit(1))


async def target_category_and_price(session, ticket: Ticket,
                                    target_id: str) -> tuple[WordsValue, Decimal]:
    """The category label and face value a ticket exchanged into ``target_id`` carries (see
    the module's docstring for the rule)."""
    connection = await session.connection()
    params = {"target": target_id, "category": ticket.category, "price": ticket.price}
    for statement in (_SAME_NAME, _SAME_PRICE, _FIRST):
        found = (await connection.execute(statement, params)).first()
        if found is not None:
            return found.category, found.price
    return ticket.category, ticket.price


async def target_category(session, ticket: Ticket, target_id: str) -> WordsValue:
    """The category label alone (see ``target_category_and_price``)."""
    return (await target_category_and_price(session, ticket, target_id))[0]
