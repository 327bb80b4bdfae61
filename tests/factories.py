"""Small builders of store rows for service tests that need one precise situation."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal

from storage.db.store import Store, utcnow
from storage.models import Barcode, Event, Order, OrderAccess, Ticket
from storage.services import new_barcode

_numbers = itertools.count(1)


async def make_event(store: Store, event_id: str = "fest-sat", **overrides) -> str:
    values = {
        "id": event_id, "name": "Dreamfest 2027 — Saturday",
        "starts_at": dt.datetime(2027, 7, 17, 12, 0, tzinfo=dt.UTC),
        "timezone": "Europe/Paris", "venue_name": "Parc des Expositions",
        "venue_city": "Nantes", "currency": "EUR", "faq_url": "https://dreamfest.example/faq",
        "personalisation_enabled": True, "resale_enabled": True,
        "resale_min_price": Decimal("10.00"), "exchange_enabled": False, "exchange_targets": [],
    }
    values.update(overrides)
    async with store.write() as session:
        session.add(Event(**values))
    return event_id


async def make_order(
    store: Store, *, event_id: str = "fest-sat", tickets: int = 3, buyer: str = "Camille Martin",
    email: str | None = None, language: str = "fr", managers: tuple[int, ...] = (),
) -> tuple[int, list[int]]:
    """An order of ``tickets`` tickets, managed by the given Telegram users."""
    serial = next(_numbers)
    now = utcnow()
    async with store.write() as session:
        order = Order(number=f"DF-{serial:06d}", buyer_name=buyer,
                      buyer_email=email or f"buyer{serial}@example.org", language=language,
                      created_at=now)
        session.add(order)
        await session.flush()
        ticket_ids = []
        for k in range(tickets):
            code = new_barcode()
            ticket = Ticket(ref=f"T-{serial}-{k}", order_id=order.id, event_id=event_id,
                            category="Pass samedi", price=Decimal("89.00"), barcode=code,
                            updated_at=now)
            session.add(ticket)
            await session.flush()
            session.add(Barcode(code=code, ticket_id=ticket.id, issued_at=now))
            ticket_ids.append(ticket.id)
        for telegram_id in managers:
            session.add(OrderAccess(telegram_id=telegram_id, order_id=order.id, granted_at=now))
    return order.id, ticket_ids
