"""Loading orders and tickets as views, with the access check built into the query.

A ticket or order the user may not manage is reported exactly like one that does not exist, so
a forged button reveals nothing.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import Refusal
from storage.models import (
    Event,
    Invitation,
    InvitationState,
    ListingState,
    Order,
    OrderAccess,
    ResaleListing,
    Ticket,
    TicketState,
)
from storage.views import (
    EventView,
    HeldTicket,
    Home,
    InvitationView,
    ListingView,
    OrderSummary,
    OrderView,
    TicketView,
)


def event_view(event: Event) -> EventView:
    return EventView(
        id=event.id,
        name=event.name,
        starts_at=event.starts_at,
        timezone=event.timezone,
        venue_name=event.venue_name,
        venue_city=event.venue_city,
        currency=event.currency,
        faq_url=event.faq_url,
        personalisation_enabled=event.personalisation_enabled,
        personalisation_deadline=event.personalisation_deadline,
        resale_enabled=event.resale_enabled,
        exchange_enabled=event.exchange_enabled,
        resale_deadline=event.resale_deadline,
        exchange_targets=tuple(event.exchange_targets or ()),
    )


def personalisation_open(event: Event | EventView, now: dt.datetime) -> bool:
    deadline = event.personalisation_deadline
    return event.personalisation_enabled and (deadline is None or now <= deadline)


def resale_open(event: Event, now: dt.datetime) -> bool:
    deadline = event.resale_deadline
    return event.resale_enabled and (deadline is None or now <= deadline)


def exchange_open(event: Event, now: dt.datetime) -> bool:
    return event.exchange_enabled and bool(event.exchange_targets) and now < event.starts_at


def ticket_actions(ticket: Ticket, event: Event, now: dt.datetime) -> tuple[str, ...]:
    """The actions the buyer may take on a ticket now, given its state and its event's policy,
    in the order the ticket's menu shows them."""
    personal = personalisation_open(event, now)
    resale = resale_open(event, now)
    exchange = exchange_open(event, now)
    wanted: list[tuple[bool, str]] = []
    if ticket.state == TicketState.TO_ASSIGN:
        wanted = [(personal, "assign"), (resale, "sell"), (exchange, "exchange")]
    elif ticket.state == TicketState.PENDING:
        wanted = [(personal, "resend"), (True, "revoke")]
    elif ticket.state == TicketState.COMPLETED:
        wanted = [(personal, "rename"), (personal, "take_back"), (resale, "sell"),
                  (exchange, "exchange")]
    elif ticket.state == TicketState.ON_RESALE:
        wanted = [(resale, "change_price"), (True, "cancel_sale")]
    return tuple(action for allowed, action in wanted if allowed)


def ticket_view(
    ticket: Ticket, event: Event, invitation: Invitation | None, now: dt.datetime,
    listing: ResaleListing | None = None,
) -> TicketView:
    return TicketView(
        id=ticket.id,
        ref=ticket.ref,
        event_id=ticket.event_id,
        category=ticket.category,
        price=ticket.price,
        state=ticket.state,
        holder_name=ticket.holder_name,
        version=ticket.version,
        invitation=(
            InvitationView(
                id=invitation.id,
                email=invitation.email,
                created_at=invitation.created_at,
                expires_at=invitation.expires_at,
            )
            if invitation is not None
            else None
        ),
        listing=(ListingView(listing.id, listing.price, listing.currency)
                 if listing is not None else None),
        actions=ticket_actions(ticket, event, now),
    )


async def invitation_with_ticket(
    session: AsyncSession, invitation_id: int
) -> tuple[Invitation, Ticket, Event] | None:
    """An invitation, its ticket and the ticket's event (one query), or None."""
    row = (
        await session.execute(
            select(Invitation, Ticket, Event)
            .join(Ticket, Ticket.id == Invitation.ticket_id)
            .join(Event, Event.id == Ticket.event_id)
            .where(Invitation.id == invitation_id)
        )
    ).first()
    return None if row is None else tuple(row)


async def may_manage(session: AsyncSession, telegram_id: int, order_id: int) -> bool:
    found = await session.scalar(
        select(OrderAccess.order_id).where(
            OrderAccess.telegram_id == telegram_id, OrderAccess.order_id == order_id
        )
    )
    return found is not None


async def ticket_rows(session: AsyncSession, order_id: int, *, with_gone: bool = False) -> list:
    """Each ticket of the order with its event, pending invitation and live listing (one query);
    tickets sold or exchanged away only ``with_gone``."""
    query = (
        select(Ticket, Event, Invitation, ResaleListing)
        .join(Event, Event.id == Ticket.event_id)
        .outerjoin(Invitation, and_(Invitation.ticket_id == Ticket.id,
                                    Invitation.state == InvitationState.PENDING))
        .outerjoin(ResaleListing, and_(ResaleListing.ticket_id == Ticket.id,
                                       ResaleListing.state == ListingState.LISTED))
        .where(Ticket.order_id == order_id)
        .order_by(Ticket.id)
    )
    if not with_gone:
        query = query.where(Ticket.state.not_in([TicketState.SOLD, TicketState.EXCHANGED]))
    return list((await session.execute(query)).all())


async def load_order(
    session: AsyncSession, telegram_id: int | None, order_id: int, now: dt.datetime
) -> OrderView:
    """The whole order, its events and pending invitations; ``telegram_id`` None skips access."""
    query = select(Order).where(Order.id == order_id)
    if telegram_id is not None:
        query = query.join(
            OrderAccess,
            and_(OrderAccess.order_id == Order.id, OrderAccess.telegram_id == telegram_id),
        )
    order = await session.scalar(query)
    if order is None:
        raise Refusal("not_found")
    rows = await ticket_rows(session, order.id)
    events = {event.id: event_view(event) for _, event, _, _ in rows}
    tickets = tuple(ticket_view(t, e, i, now, listing) for t, e, i, listing in rows)
    return OrderView(
        id=order.id,
        number=order.number,
        buyer_name=order.buyer_name,
        buyer_email=order.buyer_email,
        language=order.language,
        events=dict(sorted(events.items(), key=lambda item: (item[1].starts_at, item[0]))),
        tickets=tickets,
    )


async def load_home(session: AsyncSession, telegram_id: int) -> Home:
    """The orders this account may manage and the tickets it holds."""
    order_rows = (
        await session.execute(
            select(Order.id, Order.number, func.count(Ticket.id))
            .join(OrderAccess, OrderAccess.order_id == Order.id)
            .outerjoin(
                Ticket,
                and_(
                    Ticket.order_id == Order.id,
                    Ticket.state.not_in([TicketState.SOLD, TicketState.EXCHANGED]),
                ),
            )
            .where(OrderAccess.telegram_id == telegram_id)
            .group_by(Order.id, Order.number)
            .order_by(Order.number)
            .limit(50)
        )
    ).all()
    order_ids = [row[0] for row in order_rows]
    events_by_order: dict[int, list[EventView]] = {oid: [] for oid in order_ids}
    if order_ids:
        pairs = (
            await session.execute(
                select(Ticket.order_id, Ticket.event_id)
                .where(Ticket.order_id.in_(order_ids))
                .distinct()
            )
        ).all()
        events = {
            event.id: event_view(event)
            for event in await session.scalars(
                select(Event).where(Event.id.in_({event_id for _, event_id in pairs}))
            )
        }
        for order_id, event_id in sorted(pairs, key=lambda p: (events[p[1]].starts_at, p[1])):
            events_by_order[order_id].append(events[event_id])
    held_rows = (
        await session.execute(
            select(Ticket, Event)
            .join(Event, Event.id == Ticket.event_id)
            .where(
                Ticket.holder_telegram_id == telegram_id,
                Ticket.state == TicketState.COMPLETED,
            )
            .order_by(Event.starts_at, Ticket.id)
            .limit(50)
        )
    ).all()
    return Home(
        orders=tuple(
            OrderSummary(id=oid, number=number, ticket_count=count,
                         events=tuple(events_by_order[oid]))
            for oid, number, count in order_rows
        ),
        held=tuple(
            HeldTicket(ref=t.ref, category=t.category, holder_name=t.holder_name or "",
                       event=event_view(e))
            for t, e in held_rows
        ),
    )
