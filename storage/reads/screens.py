"""What the overview and ticket screens read: the user's orders, one order, one ticket (each
only if this user may manage it)."""

from __future__ import annotations

from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.reads import loading as reading
from storage.reads.views import (
    Home,
    OrderView,
    TicketDetails,
)


async def home(store: Store, telegram_id: int) -> Home:
    async with store.read() as session:
        return await reading.load_home(session, telegram_id)


async def order_overview(store: Store, telegram_id: int, order_id: int) -> OrderView:
    statement, parameters = reading.order_query(telegram_id, order_id=order_id)
    return reading.order_view(await store.read_rows(statement, parameters), utcnow())


async def ticket_details(store: Store, telegram_id: int, ticket_id: int) -> TicketDetails:
    """A ticket with its order and event, if this user may manage it."""
    statement, parameters = reading.order_query(telegram_id, ticket_id=ticket_id)
    order = reading.order_view(await store.read_rows(statement, parameters), utcnow())
    ticket = next((t for t in order.tickets if t.id == ticket_id), None)
    if ticket is None:
        raise Refusal("not_found")
    return TicketDetails(order=order, ticket=ticket, event=order.events[ticket.event_id])
