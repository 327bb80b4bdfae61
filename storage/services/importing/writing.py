"""The second half of an import: the staged document checked against the store, then written,
in one write transaction.

Both passes walk the staging a chunk of orders at a time, so memory does not grow with the
document. The first pass looks up which orders and tickets the store already holds, names every
conflict (a reference that belongs to another order, a stored ticket whose event, category or
price differs) and marks in the staging what exists; only if it found nothing wrong does the
second pass write: events created or updated, then new orders, tickets, barcodes and audit
entries in bulk. Everything happens in one transaction, so the store never holds part of a
document, and the checks see exactly what the writes meet. On SQLite that transaction holds
the database's write lock from the first lookup to the commit (a million tickets: see the
README's numbers); on PostgreSQL other writers go on, and one that inserts one of our orders
meanwhile makes the commit fail and the import check again (``WRITE_ATTEMPTS``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, TypeVar

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import barcode_feed
from storage.db.store import utcnow
from storage.models import ActorKind, AuditEntry, Barcode, Event, Order, Ticket, TicketState
from storage.services import audit, entry_keys, new_barcode
from storage.services.importing.entries import EventIn
from storage.services.importing.staging import StagedOrder, Staging
from storage.services.importing.stream import shown

# SQLite allows at most 999 bound parameters per statement in older builds.
LOOKUP_CHUNK = 500
INSERT_CHUNK = 1000
ORDER_CHUNK = 500  # orders per pass over the staging

_T = TypeVar("_T")
# Called with (orders done, orders in all) as a pass goes.
Advance = Callable[[int, int], None]


@dataclass
class StagedDocument:
    """A document read and validated: its events in memory (a festival has a few dozen), its
    orders and tickets in the staging, the problems found so far."""

    events: list[tuple[int, EventIn]]
    declared_event_ids: set[str]
    staging: Staging
    problems: Any  # importer.Problems
    event_rows: dict[str, Event] = field(default_factory=dict)


@dataclass(frozen=True)
class Written:
    events_created: int
    events_updated: int
    orders_created: int
    tickets_created: int


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _rows_in(
    session: AsyncSession, statement: Select[Any], column: Any, values: set[str]
) -> list[Any]:
    """Rows of ``statement`` whose ``column`` is one of ``values``, a few hundred at a time."""
    rows: list[Any] = []
    for chunk in chunks(sorted(values), LOOKUP_CHUNK):
        rows.extend(await session.execute(statement.where(column.in_(chunk))))
    return rows


def _unknown(event: str) -> str:
    return f"unknown event {shown(event)} (neither in this document nor in the store)"


# --- checking --------------------------------------------------------------------------------


async def check_against_store(session: AsyncSession, document: StagedDocument,
                              run: Callable, advance: Advance | None) -> None:
    """Add every conflict with the store to ``document.problems`` and mark in the staging what
    the store holds. ``run(function, *args)`` runs a staging call off the event loop."""
    staging = document.staging
    await run(staging.forget_store)
    named = set(document.declared_event_ids) | await run(staging.event_ids)
    for _, event in document.events:
        named.update(event.exchange.targets)
    rows = await _rows_in(session, select(Event), Event.id, named)
    document.event_rows = {row[0].id: row[0] for row in rows}
    known = document.declared_event_ids | document.event_rows.keys()
    for index, event in document.events:
        for position, target in enumerate(event.exchange.targets):
            if target not in known:
                document.problems.add(
                    f"events[{index}] ({event.id}).exchange.targets[{position}]: "
                    f"{_unknown(target)}")
    unknown = await run(staging.event_ids) - known
    if unknown:
        for idx, number, position, ref, event in await run(
                lambda: list(staging.tickets_of_events(unknown))):
            document.problems.add(
                f"orders[{idx}] ({number}).tickets[{position}] ({ref}).event: {_unknown(event)}")
    done = 0
    async for orders in _order_chunks(staging, run):
        await _check_chunk(session, document, orders, run)
        done += len(orders)
        if advance is not None:
            advance(done, staging.order_count)


async def _order_chunks(staging: Staging, run: Callable) -> Any:
    iterator = staging.order_chunks(ORDER_CHUNK)
    while (orders := await run(next, iterator, None)) is not None:
        yield orders


async def _check_chunk(session: AsyncSession, document: StagedDocument,
                       orders: list[StagedOrder], run: Callable) -> None:
    numbers = {order.number for order in orders}
    stored_orders = dict(await _rows_in(session, select(Order.number, Order.id),
                                        Order.number, numbers))
    refs = {ticket.ref for order in orders for ticket in order.tickets}
    statement = select(Ticket.ref, Order.number, Ticket.event_id, Ticket.category,
                       Ticket.price).join(Order, Ticket.order_id == Order.id)
    stored_tickets = {row[0]: tuple(row[1:])
                      for row in await _rows_in(session, statement, Ticket.ref, refs)}
    order_marks, ticket_marks = [], []
    for order in orders:
        if order.number in stored_orders:
            order_marks.append((order.idx, stored_orders[order.number]))
        for ticket in order.tickets:
            stored = stored_tickets.get(ticket.ref)
            if stored is None:
                continue
            ticket_marks.append(ticket.id)
            where = (f"orders[{order.idx}] ({order.number}).tickets[{ticket.position}] "
                     f"({ticket.ref})")
            for problem in _ticket_conflicts(where, order.number, ticket, stored):
                document.problems.add(problem)
    if order_marks or ticket_marks:
        await run(document.staging.mark_stored, order_marks, ticket_marks)


def _ticket_conflicts(where: str, number: str, ticket: Any,
                      stored: tuple[str, str, Any, Decimal]) -> Iterator[str]:
    stored_number, event_id, category, price = stored
    if stored_number != number:
        yield f"{where}.ref: already belongs to order {stored_number} in the store"
        return
    given = {"event": ticket.event, "category": ticket.category, "price": Decimal(ticket.price)}
    kept = {"event": event_id, "category": category, "price": price}
    for name, value in given.items():
        if value != kept[name]:
            yield (
                f"{where}.{name}: the store has this ticket with {name} {shown(kept[name])}, "
                f"not {shown(value)}; an imported ticket cannot change"
            )


# --- writing ---------------------------------------------------------------------------------

# Bulk rows go through the tables, not the mapped classes: the ORM's bulk path costs about
# twice as much per row and gives nothing back here.
_ORDERS, _TICKETS = Order.__table__, Ticket.__table__
_BARCODES, _AUDIT_ENTRIES = Barcode.__table__, AuditEntry.__table__


async def write_document(session: AsyncSession, document: StagedDocument, actor: str,
                         run: Callable, advance: Advance | None) -> Written:
    """Write a document checked against the store (``check_against_store``, no problems)."""
    now = utcnow()
    events_created, events_updated = await _write_events(session, document, now, actor)
    await session.flush()  # the events exist before tickets point at them
    orders_created = tickets_created = done = 0
    async for orders in _order_chunks(document.staging, run):
        created, tickets = await _write_chunk(session, orders, now, actor)
        orders_created += created
        tickets_created += tickets
        done += len(orders)
        if advance is not None:
            advance(done, document.staging.order_count)
    return Written(events_created, events_updated, orders_created, tickets_created)


async def _write_events(session: AsyncSession, document: StagedDocument, now: dt.datetime,
                        actor: str) -> tuple[int, int]:
    """Add new events and bring existing ones to the document's values; count both."""
    created = updated = 0
    for _, event in document.events:
        columns = event.columns()
        row = document.event_rows.get(event.id)
        if row is None:
            session.add(Event(id=event.id, **columns))
            await _log(session, "event_imported", now, actor, event=event.id)
            created += 1
            continue
        changed = sorted(name for name, value in columns.items() if getattr(row, name) != value)
        for name in changed:
            setattr(row, name, columns[name])
        if changed:
            await _log(session, "event_updated", now, actor, event=event.id, changed=changed)
            updated += 1
    await session.flush()
    connection = await session.connection()
    for _, event in document.events:  # every ticket's code is signed with its event's key
        await entry_keys.live_key(connection, event.id, now)
    return created, updated


async def _log(session: AsyncSession, action: str, now: dt.datetime, actor: str,
               **details: Any) -> None:
    await audit(session, ActorKind.SYSTEM, None, action, now=now, source=actor, **details)


async def _write_chunk(session: AsyncSession, orders: list[StagedOrder], now: dt.datetime,
                       actor: str) -> tuple[int, int]:
    """Insert a chunk's new orders and new tickets (with barcodes and audit entries)."""
    new_orders = [order for order in orders if order.stored_id is None]
    ids = {order.number: order.stored_id for order in orders if order.stored_id is not None}
    if new_orders:
        # RETURNING with many rows: SQLAlchemy's "insertmanyvalues" (SQLite >= 3.35, PostgreSQL).
        result = await session.execute(
            _ORDERS.insert().returning(_ORDERS.c.number, _ORDERS.c.id),
            [{"number": order.number, "buyer_name": order.buyer_name,
              "buyer_email": order.buyer_email, "language": order.language, "created_at": now}
             for order in new_orders])
        ids.update(dict(result.all()))
    tickets = [(ids[order.number], ticket) for order in orders for ticket in order.tickets
               if not ticket.stored]
    codes = _fresh_barcodes(len(tickets))
    for chunk, chunk_codes in zip(chunks(tickets, INSERT_CHUNK), chunks(codes, INSERT_CHUNK),
                                  strict=True):
        result = await session.execute(
            _TICKETS.insert().returning(_TICKETS.c.id, _TICKETS.c.barcode),
            [{"ref": ticket.ref, "order_id": order_id, "event_id": ticket.event,
              "category": ticket.category, "price": Decimal(ticket.price),
              "state": TicketState.TO_ASSIGN, "barcode": code, "updated_at": now}
             for (order_id, ticket), code in zip(chunk, chunk_codes, strict=True)])
        issued = dict(result.all())  # ticket id → barcode
        await session.execute(_BARCODES.insert(), [
            {"code": code, "ticket_id": ticket_id, "issued_at": now}
            for ticket_id, code in issued.items()
        ])
        # The gate's feed learns every new barcode in this transaction (storage/barcode_feed).
        by_code = {code: ticket for (_, ticket), code in zip(chunk, chunk_codes, strict=True)}
        barcode_feed.note_issued(session, (
            (by_code[code].event, ticket_id, code, by_code[code].ref, by_code[code].category)
            for ticket_id, code in issued.items()))
        await barcode_feed.write_noted(session)
    await _audit_orders(session, orders, ids, now, actor)
    return len(new_orders), len(tickets)


def _fresh_barcodes(count: int) -> list[str]:
    codes: set[str] = set()
    while len(codes) < count:
        codes.add(new_barcode())
    return list(codes)


async def _audit_orders(session: AsyncSession, orders: list[StagedOrder], ids: dict[str, int],
                        now: dt.datetime, actor: str) -> None:
    """One entry per new order, and one per existing order that gained tickets.

    The rows are those ``services.audit`` writes, inserted in bulk: adding 100,000 ORM objects
    would cost more than the rest of the import."""
    rows = []
    for order in orders:
        added = sum(not ticket.stored for ticket in order.tickets)
        if added:
            rows.append({
                "at": now, "actor_kind": ActorKind.SYSTEM, "actor_telegram_id": None,
                "action": "tickets_imported" if order.stored_id else "order_imported",
                "order_id": ids[order.number], "ticket_id": None,
                "details": {"tickets": added, "source": actor},
            })
    if rows:
        await session.execute(_AUDIT_ENTRIES.insert(), rows)
