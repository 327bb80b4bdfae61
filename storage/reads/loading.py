"""Loading orders and tickets as views, with the access check built into the query.

A ticket or order the user may not manage is reported exactly like one that does not exist, so
a forged button reveals nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from types import SimpleNamespace
from typing import Any

from sqlalchemy import Row, Select, Table, and_, bindparam, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.id_lists import among_ids
from storage.db.prepared import PreparedConnection, execute_in_session
from storage.errors import Refusal
from storage.models import (
    Event,
    Invitation,
    InvitationState,
    ListingState,
    Order,
    OrderAccess,
    ResaleListing,
    TelegramUser,
    Ticket,
    TicketState,
    not_gone,
    sql_constant,
)
from storage.reads.views import (
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
        resale_min_price=event.resale_min_price,
        resale_max_price=event.resale_max_price,
        entry_code=str(event.entry_code or "static"),
        entry_period_seconds=event.entry_period_seconds or 15,
    )


def personalisation_open(event: Event | EventView, now: dt.datetime) -> bool:
    deadline = event.personalisation_deadline
    return event.personalisation_enabled and (deadline is None or now <= deadline)


def resale_open(event: Event, now: dt.datetime) -> bool:
    deadline = event.resale_deadline
    return event.resale_enabled and (deadline is None or now <= deadline)


def exchange_open(event: Event | EventView, now: dt.datetime) -> bool:
    return event.exchange_enabled and bool(event.exchange_targets) and now < event.starts_at


def ticket_actions(ticket: Ticket, event: Event, now: dt.datetime) -> tuple[str, ...]:
    """The actions the buyer may take on a ticket now, given its state and its event's policy,
    in the order the ticket's menu shows them."""
    if ticket.used_at is not None:
        return ()  # scanned in at the gate: used, nothing about it changes any more
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
        used_at=ticket.used_at,
        holder_telegram_id=ticket.holder_telegram_id,
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
) -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace] | None:
    """An invitation, its ticket and the ticket's event (one query), or None: namespaces of
    every column of each (``records``)."""
    found = await execute_in_session(session, _invitation_with_ticket(),
                                     {"invitation": invitation_id})
    return records(found.first(), _INVITATION_PARTS)


def invitation_with_ticket_on(
    connection: PreparedConnection, invitation_id: int
) -> tuple[SimpleNamespace, SimpleNamespace, SimpleNamespace] | None:
    """``invitation_with_ticket`` on a bare connection (``Store.write_prepared``)."""
    found = connection.execute(_invitation_with_ticket(), {"invitation": invitation_id})
    return records(found.first(), _INVITATION_PARTS)


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
                                       ResaleListing.state == sql_constant(ListingState.LISTED)))
        .where(Ticket.order_id == order_id)
        .order_by(Ticket.id)
    )
    if not with_gone:
        query = query.where(not_gone(Ticket.state))
    return list((await session.execute(query)).all())


# --- one order as one statement ---------------------------------------------------------------
# The order screens are what every press shows, so their read is one prepared Core statement:
# the order (behind the access check), each live ticket with its event, pending invitation and
# live listing, and the viewer's chosen language. Only the columns the views use are read.

_ORDER_COLUMNS = ("id", "number", "buyer_name", "buyer_email", "language")
_TICKET_COLUMNS = ("id", "ref", "event_id", "category", "price", "state", "holder_name",
                   "version", "used_at", "holder_telegram_id")
_EVENT_COLUMNS = ("id", "name", "starts_at", "timezone", "venue_name", "venue_city", "currency",
                  "faq_url", "personalisation_enabled", "personalisation_deadline",
                  "resale_enabled", "exchange_enabled", "resale_deadline", "exchange_targets",
                  "resale_min_price", "resale_max_price", "entry_code", "entry_period_seconds")
_INVITATION_COLUMNS = ("id", "email", "created_at", "expires_at")
_LISTING_COLUMNS = ("id", "price", "currency")
_PARTS = (  # (label prefix, table, columns)
    ("o_", Order.__table__, _ORDER_COLUMNS),
    ("t_", Ticket.__table__, _TICKET_COLUMNS),
    ("e_", Event.__table__, _EVENT_COLUMNS),
    ("i_", Invitation.__table__, _INVITATION_COLUMNS),
    ("l_", ResaleListing.__table__, _LISTING_COLUMNS),
)


@functools.cache
def _order_statement(*, by_ticket: bool, with_viewer: bool) -> Select:
    """The order of ``:order_id`` (or of the ticket ``:ticket_id``), seen by ``:viewer`` (its
    access checked, its language read) or by staff (``with_viewer`` False)."""
    orders, tickets, events = Order.__table__, Ticket.__table__, Event.__table__
    invitations, listings = Invitation.__table__, ResaleListing.__table__
    access, users = OrderAccess.__table__, TelegramUser.__table__
    columns = [table.c[name].label(prefix + name)
               for prefix, table, names in _PARTS for name in names]
    if with_viewer:
        columns.append(select(users.c.chosen_language)
                       .where(users.c.telegram_id == bindparam("viewer"))
                       .scalar_subquery().label("viewer_language"))
    query = select(*columns).select_from(orders)
    if with_viewer:
        query = query.join(access, and_(access.c.order_id == orders.c.id,
                                        access.c.telegram_id == bindparam("viewer")))
    query = (
        query
        .outerjoin(tickets, and_(tickets.c.order_id == orders.c.id,
                                 not_gone(tickets.c.state)))
        .outerjoin(events, events.c.id == tickets.c.event_id)
        .outerjoin(invitations, and_(invitations.c.ticket_id == tickets.c.id,
                                     invitations.c.state == InvitationState.PENDING))
        .outerjoin(listings, and_(listings.c.ticket_id == tickets.c.id,
                                  listings.c.state == sql_constant(ListingState.LISTED)))
        .order_by(tickets.c.id)
    )
    if by_ticket:
        owner = Ticket.__table__.alias("owner")
        return query.where(orders.c.id == select(owner.c.order_id)
                           .where(owner.c.id == bindparam("ticket_id")).scalar_subquery())
    return query.where(orders.c.id == bindparam("order_id"))


_Slice = tuple[tuple[str, ...], int, int]  # column names, start, stop


def _column_slices(parts: Iterable[tuple[str, tuple[str, ...]]]) -> dict[str, _Slice]:
    """Where each part's columns lie in a row that has them one part after the other, so that
    a part's namespace is built from a slice of the row rather than a lookup per label."""
    slices, start = {}, 0
    for prefix, names in parts:
        slices[prefix] = (names, start, start + len(names))
        start += len(names)
    return slices


_ORDER_SLICES = _column_slices((prefix, names) for prefix, _table, names in _PARTS)


def _part(row: Row[Any], prefix: str) -> SimpleNamespace | None:
    """One table's columns of a joined row of ``_order_statement``, by their own names; None
    for an outer join's missing side (its ``id``, the first, is null)."""
    names, start, stop = _ORDER_SLICES[prefix]
    values = row[start:stop]
    if values[0] is None:
        return None
    return SimpleNamespace(**dict(zip(names, values, strict=True)))


# The rows a use case decides on are read with Core, every column of each table labelled by a
# prefix, and handed out as namespaces (``records``): the ORM's identity map and instance
# loading cost more than the statement, and the use cases change rows by statements of their
# own, never through the objects.
Parts = tuple[tuple[str, Table], ...]  # (label prefix, table)


def record_columns(parts: Parts) -> list[Any]:
    """Every column of each part's table, labelled with the part's prefix."""
    return [column.label(prefix + column.key) for prefix, table in parts for column in table.c]


def records(row: Row[Any] | None, parts: Parts) -> tuple[SimpleNamespace, ...] | None:
    """A row of ``record_columns`` as one namespace per part, by column names; None for none."""
    if row is None:
        return None
    return tuple(SimpleNamespace(**dict(zip(names, row[start:stop], strict=True)))
                 for names, start, stop in _record_slices(parts).values())


@functools.cache
def _record_slices(parts: Parts) -> dict[str, _Slice]:
    return _column_slices((prefix, tuple(column.key for column in table.c))
                          for prefix, table in parts)


_INVITATION_PARTS: Parts = (("i_", Invitation.__table__), ("t_", Ticket.__table__),
                            ("e_", Event.__table__))


@functools.cache
def _invitation_with_ticket() -> Select:
    # Built once: a friend's every screen and answer reads it.
    invitations, tickets, events = Invitation.__table__, Ticket.__table__, Event.__table__
    return (select(*record_columns(_INVITATION_PARTS))
            .select_from(invitations.join(tickets, tickets.c.id == invitations.c.ticket_id)
                         .join(events, events.c.id == tickets.c.event_id))
            .where(invitations.c.id == bindparam("invitation")))


def order_query(telegram_id: int | None, *, order_id: int | None = None,
                ticket_id: int | None = None) -> tuple[Select, dict[str, Any]]:
    """The statement and parameters reading the whole order (given by ``order_id`` or one of its
    tickets), its events, pending invitations and live listings in one statement, for
    ``order_view``; ``telegram_id`` None skips the access check."""
    statement = _order_statement(by_ticket=ticket_id is not None,
                                 with_viewer=telegram_id is not None)
    params: dict[str, Any] = {"viewer": telegram_id} if telegram_id is not None else {}
    params.update({"ticket_id": ticket_id} if ticket_id is not None else {"order_id": order_id})
    return statement, params


def order_view(found: Sequence[Row[Any]], now: dt.datetime) -> OrderView:
    """The order the rows of ``order_query`` describe; ``not_found`` if none (no such order, or
    not one this user may manage)."""
    if not found:
        raise Refusal("not_found")
    first = found[0]._mapping
    events: dict[str, EventView] = {}
    tickets = []
    for row in found:
        ticket = _part(row, "t_")
        if ticket is None:
            continue  # an order with no live ticket is one row without one
        event = _part(row, "e_")
        if event.id not in events:
            events[event.id] = event_view(event)
        tickets.append(ticket_view(ticket, event, _part(row, "i_"), now, _part(row, "l_")))
    return OrderView(
        id=first["o_id"],
        number=first["o_number"],
        buyer_name=first["o_buyer_name"],
        buyer_email=first["o_buyer_email"],
        language=first["o_language"],
        events=dict(sorted(events.items(), key=lambda item: (item[1].starts_at, item[0]))),
        tickets=tuple(tickets),
        viewer_language=first.get("viewer_language"),
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
                    not_gone(Ticket.state),
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
        # The list bound whole (``among_ids``): one statement whatever the number of orders.
        of_the_orders = among_ids(Ticket.order_id, "orders")
        pairs = (
            await session.execute(
                select(Ticket.order_id, Ticket.event_id).where(of_the_orders).distinct(),
                {"orders": order_ids},
            )
        ).all()
        events = {
            event.id: event_view(event)
            for event in await session.scalars(
                select(Event).where(Event.id.in_(select(Ticket.event_id).where(of_the_orders))),
                {"orders": order_ids},
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
                       event=event_view(e), id=t.id)
            for t, e in held_rows
        ),
    )
