"""The outbox of outbound webhooks, on the store's side: messages written with their cause,
one delivery per endpoint, claimed by the sender (``bot/webhooks.py``) from the leased queue
``WEBHOOKS``, and what operators see and replay.

What is promised, and where the promise ends:

- **Never lost.** ``queue_webhook`` writes the message and its deliveries in the transaction
  of the change (a listing, a new holder, a scan…), so a crash or a dead endpoint only delays
  it; it leaves the queue when the endpoint took it (2xx), the retry schedule ran out
  (``failed``: an operator may retry it), or the endpoint said ``410 Gone`` (``stopped``).
- **The same message every time.** Its body and ``webhook_id`` are fixed when it is written:
  every retry, and every endpoint, gets the same bytes under the same id.
- **Each order's messages in order, to each endpoint,** and never two deliveries of one message
  at once (the queue's ``ready`` condition and its leases, ``storage/leased_queue.py``).
- **At least once, not exactly once.** A crash between the endpoint's 2xx and the mark
  delivers the message again, with the same id: receivers drop what they have seen.

The endpoints are the store's (``Store.webhook_endpoints``, from the settings); with none, no
message is written at all.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import execute_in_session
from storage.db.store import WEBHOOK_ENDPOINTS, Store, utcnow
from storage.db.upsert import upsert
from storage.leased_queue import WEBHOOKS, Lease
from storage.models import (
    DeliveryState,
    Invitation,
    InvitationState,
    ListingState,
    Order,
    ResaleListing,
    StoppedWebhookEndpoint,
    Ticket,
    WebhookDelivery,
    WebhookMessage,
    sql_constant,
)
from storage.webhook_messages import (
    InvitationData,
    ListingData,
    TicketAssignedData,
    TicketExchangedData,
    TicketScannedData,
    message_body,
)

MAX_PAGE = 500

_INSERT_MESSAGE = insert(WebhookMessage.__table__).returning(WebhookMessage.id)
_INSERT_DELIVERY = insert(WebhookDelivery.__table__)
_ORDER_NUMBER = select(Order.__table__.c.number).where(Order.__table__.c.id == bindparam("order"))


# --- the hook: written with the change --------------------------------------------------------


def webhooks_on(session: AsyncSession) -> bool:
    """Whether this transaction's changes are sent anywhere (skip building messages if not)."""
    return bool(session.info.get(WEBHOOK_ENDPOINTS))


async def order_number(session: AsyncSession, order_id: int) -> str:
    return (await execute_in_session(session, _ORDER_NUMBER, {"order": order_id})).scalar_one()


async def queue_webhook(session: AsyncSession, type_name: str, order_id: int, data: Any,
                        now: dt.datetime) -> None:
    """Write a message of ``type_name`` about order ``order_id``, to every endpoint, in the
    caller's transaction; nothing if no endpoint is configured."""
    endpoints: Sequence[str] = session.info.get(WEBHOOK_ENDPOINTS, ())
    if not endpoints:
        return
    message_id = (await execute_in_session(session, _INSERT_MESSAGE, {
        "webhook_id": "msg_" + secrets.token_hex(16), "type": type_name, "order_id": order_id,
        "body": message_body(type_name, data, now), "created_at": now,
    })).scalar_one()
    await execute_in_session(session, _INSERT_DELIVERY, [{
        "message_id": message_id, "endpoint": endpoint, "order_id": order_id,
        "state": DeliveryState.PENDING, "attempts": 0, "next_attempt_at": now,
        "finished_at": None, "last_status": None, "last_error": None,
    } for endpoint in endpoints])


# What the services call: each builds its message only when webhooks are on.


async def announce_listing(session: AsyncSession, type_name: str, *, listing_id: int,
                           ticket: Ticket, price: Decimal, currency: str,
                           now: dt.datetime) -> None:
    if webhooks_on(session):
        await queue_webhook(session, type_name, ticket.order_id, ListingData(
            id=listing_id, ticket=ticket.ref, order=await order_number(session, ticket.order_id),
            event=ticket.event_id, price=str(price), currency=currency), now)


async def announce_assigned(session: AsyncSession, ticket: Ticket, *, holder: str | None,
                            barcode: str, now: dt.datetime) -> None:
    """``ticket`` as read before the change: its ``barcode`` is the one now void."""
    if webhooks_on(session):
        await queue_webhook(session, "ticket.assigned", ticket.order_id, TicketAssignedData(
            ticket=ticket.ref, order=await order_number(session, ticket.order_id),
            event=ticket.event_id, holder=holder, barcode=barcode,
            voided_barcode=ticket.barcode), now)


async def announce_invitation(session: AsyncSession, type_name: str, invitation_id: int,
                              ticket: Ticket, now: dt.datetime) -> None:
    if webhooks_on(session):
        await queue_webhook(session, type_name, ticket.order_id, InvitationData(
            invitation=invitation_id, ticket=ticket.ref,
            order=await order_number(session, ticket.order_id), event=ticket.event_id), now)


async def announce_exchange(session: AsyncSession, ticket: Ticket, replacement: Ticket,
                            now: dt.datetime) -> None:
    """``ticket`` as read before the exchange (its barcode now void)."""
    if webhooks_on(session):
        await queue_webhook(session, "ticket.exchanged", ticket.order_id, TicketExchangedData(
            ticket=ticket.ref, order=await order_number(session, ticket.order_id),
            event=ticket.event_id, voided_barcode=ticket.barcode, new_ticket=replacement.ref,
            new_event=replacement.event_id, barcode=replacement.barcode), now)


async def announce_scan(session: AsyncSession, *, ticket_id: int, ticket_ref: str,
                        order_id: int, event_id: str, barcode: str, gate: str,
                        now: dt.datetime) -> None:
    """The ticket was let in; first, what letting it in settled at ``now``: its listing taken
    off the market, its invitation withdrawn (``storage/services/gate.py``)."""
    if not webhooks_on(session):
        return
    number = await order_number(session, order_id)
    listing = await session.scalar(select(ResaleListing).where(
        ResaleListing.ticket_id == ticket_id,
        ResaleListing.state == sql_constant(ListingState.CANCELLED),
        ResaleListing.finished_at == now))
    if listing is not None:
        await queue_webhook(session, "listing.cancelled", order_id, ListingData(
            id=listing.id, ticket=ticket_ref, order=number, event=event_id,
            price=str(listing.price), currency=listing.currency), now)
    withdrawn = await session.scalars(select(Invitation.id).where(
        Invitation.ticket_id == ticket_id, Invitation.state == InvitationState.REVOKED,
        Invitation.finished_at == now))
    for invitation_id in withdrawn.all():
        await queue_webhook(session, "invitation.revoked", order_id, InvitationData(
            invitation=invitation_id, ticket=ticket_ref, order=number, event=event_id), now)
    await queue_webhook(session, "ticket.scanned", order_id, TicketScannedData(
        ticket=ticket_ref, order=number, event=event_id, barcode=barcode, gate=gate,
        scanned_at=now), now)


# --- the sender's side ------------------------------------------------------------------------


@dataclass(frozen=True)
class DueDelivery:
    """A claimed delivery and the message it carries."""

    lease: Lease
    endpoint: str
    webhook_id: str
    type: str
    body: str


async def claim_due(store: Store, *, limit: int, lease: dt.timedelta) -> list[DueDelivery]:
    """Take up to ``limit`` due deliveries (each the oldest unfinished of its order and
    endpoint) for one lease, with their messages."""
    claimed = await WEBHOOKS.claim(store, limit=limit, lease=lease)
    if not claimed:
        return []
    leases = {claimed_lease.id: claimed_lease for claimed_lease in claimed}
    async with store.read_connection() as connection:
        rows = (await connection.execute(
            select(WebhookDelivery.id, WebhookDelivery.endpoint, WebhookMessage.webhook_id,
                   WebhookMessage.type, WebhookMessage.body)
            .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
            .where(WebhookDelivery.id.in_(leases)).order_by(WebhookDelivery.id))).all()
    return [DueDelivery(leases[row_id], endpoint, webhook_id, type_name, body)
            for row_id, endpoint, webhook_id, type_name, body in rows]


@dataclass(frozen=True)
class Outcome:
    """What became of one try: the delivery's new state (``PENDING``: tried again after
    ``retry_in``), the endpoint's status if it answered, and the error."""

    lease: Lease
    state: DeliveryState
    status: int | None = None
    error: str | None = None
    retry_in: dt.timedelta | None = None


async def record_round(store: Store, outcomes: Sequence[Outcome]) -> None:
    """A round's outcomes in one transaction, one statement per kind of outcome (not one
    write per delivery: a dead endpoint fails a whole batch at once). A retry changes its
    delivery only while the lease holds."""
    if not outcomes:
        return
    alike: dict[tuple[Any, ...], list[Lease]] = defaultdict(list)
    for outcome in outcomes:
        alike[(outcome.state, outcome.status, outcome.error, outcome.retry_in,
               outcome.lease.until)].append(outcome.lease)
    now = utcnow()
    async with store.write(idempotent=True) as session:
        for (state, status, error, retry_in, _until), leases in alike.items():
            values = {"state": state, "last_status": status, "last_error": error}
            if state is DeliveryState.PENDING:
                await WEBHOOKS.retry_all_later_in(session, leases, retry_in, **values)
            else:
                await WEBHOOKS.finish_in(session, [lease.id for lease in leases], now=now,
                                         **values)


async def stop_endpoint(store: Store, endpoint: str, *, status: int) -> int:
    """The endpoint answered ``410 Gone``: it is stopped, and every delivery still waiting for
    it with it (returns how many). Nothing more is sent there until an operator retries."""
    now = utcnow()
    async with store.write(idempotent=True) as session:
        await upsert(session, StoppedWebhookEndpoint, {"endpoint": endpoint, "stopped_at": now},
                     index=["endpoint"], update=["stopped_at"])
        result = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint == endpoint, WebhookDelivery.finished_at.is_(None))
            .values(state=DeliveryState.STOPPED, finished_at=now, last_status=status,
                    last_error="endpoint answered 410 Gone")
            .execution_options(synchronize_session=False))
    return result.rowcount


async def stopped_endpoints(store: Store) -> frozenset[str]:
    async with store.read_connection() as connection:
        return frozenset((await connection.execute(
            select(StoppedWebhookEndpoint.endpoint))).scalars())


async def waiting(store: Store) -> int:
    """How many deliveries are not finished (due, leased or waiting to retry)."""
    return await WEBHOOKS.unfinished(store)


# --- what operators see and replay ------------------------------------------------------------


class DeliveryNotFound(LookupError):
    pass


class DeliveryNotFinished(ValueError):
    """Only a failed or stopped delivery can be retried: a pending one is on its way."""


@dataclass(frozen=True)
class DeliveryView:
    id: int
    webhook_id: str
    type: str
    endpoint: str
    order_number: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    created_at: dt.datetime
    next_attempt_at: dt.datetime | None
    finished_at: dt.datetime | None


_VIEW = (
    select(WebhookDelivery.id, WebhookMessage.webhook_id, WebhookMessage.type,
           WebhookDelivery.endpoint, Order.number, WebhookDelivery.state,
           WebhookDelivery.attempts, WebhookDelivery.last_status, WebhookDelivery.last_error,
           WebhookMessage.created_at, WebhookDelivery.next_attempt_at,
           WebhookDelivery.finished_at)
    .join(WebhookMessage, WebhookMessage.id == WebhookDelivery.message_id)
    .join(Order, Order.id == WebhookDelivery.order_id)
)


def _view(row: Any) -> DeliveryView:
    view = DeliveryView(*row)
    if view.finished_at is not None:  # its next attempt means nothing any more
        view = DeliveryView(*row[:10], None, row[11])
    return view


async def deliveries(store: Store, state: DeliveryState | None, *, after: int = 0,
                     limit: int = 100) -> list[DeliveryView]:
    """Deliveries (of one state, or all) with an id above ``after``, oldest first."""
    query = _VIEW.where(WebhookDelivery.id > after).order_by(WebhookDelivery.id).limit(limit)
    if state is not None:
        query = query.where(WebhookDelivery.state == state)
    async with store.read_connection() as connection:
        return [_view(row) for row in (await connection.execute(query)).all()]


async def retry_delivery(store: Store, delivery_id: int) -> DeliveryView:
    """Send a failed or stopped delivery again, from the start of the retry schedule; its
    endpoint, if stopped, is started again. It keeps its place among its order's messages
    (it goes first, being the oldest)."""
    now = utcnow()
    async with store.write(idempotent=True) as session:
        delivery = await session.get(WebhookDelivery, delivery_id)
        if delivery is None:
            raise DeliveryNotFound(delivery_id)
        result = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id,
                   WebhookDelivery.state.in_((DeliveryState.FAILED, DeliveryState.STOPPED)))
            .values(state=DeliveryState.PENDING, finished_at=None, attempts=0,
                    next_attempt_at=now, last_error=None)
            .execution_options(synchronize_session=False))
        if result.rowcount != 1:
            raise DeliveryNotFinished(delivery_id)
        stopped = await session.get(StoppedWebhookEndpoint, delivery.endpoint)
        if stopped is not None:
            await session.delete(stopped)
        row = (await session.execute(_VIEW.where(WebhookDelivery.id == delivery_id))).one()
    return _view(row)
