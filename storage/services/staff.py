"""What support staff may look up and do: an order's full status, a search over orders, a
ticket's audit history (what they show: ``storage/reads/staff.py``), and sending an order's
pending invitations again.

Every function takes the staff member's Telegram id and records the lookup or action in the
audit history under it. Whether that id belongs to staff is the caller's decision (it is
configuration, not a rule of the store); nothing here knows about chats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, union

from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import (
    ActorKind,
    AuditEntry,
    Event,
    Invitation,
    InvitationState,
    Order,
    Ticket,
    not_gone,
)
from storage.reads import loading as reading
from storage.reads import search
from storage.reads.staff import (
    FoundOrders,
    OrderMatch,
    OrderStatus,
    TicketHistory,
    audit_line,
    load_status,
)
from storage.services import audit, renew_invitation

FIND_LIMIT = 20
HISTORY_LIMIT = 500


@dataclass(frozen=True)
class ResentInvitations:
    order_number: str
    emails: tuple[str, ...]
    # Pending invitations of events whose personalisation has closed: a claim would fail.
    skipped: int


# --- looking up (audited) ---------------------------------------------------------------------


async def order_status(store: Store, staff_id: int, number: str) -> OrderStatus:
    """The whole order with this number; the lookup is audited."""
    return await _status_where(
        store, staff_id, Order.number == number.strip(), number=number.strip()
    )


async def order_status_by_id(store: Store, staff_id: int, order_id: int) -> OrderStatus:
    """The same, for a page button that carries the order's id."""
    return await _status_where(store, staff_id, Order.id == order_id, number=str(order_id))


async def _status_where(store: Store, staff_id: int, condition: Any, *, number: str) -> OrderStatus:
    now = utcnow()
    async with store.write() as session:
        order = await session.scalar(select(Order).where(condition))
        if order is None:
            raise Refusal("staff_no_order", number=_echo(number))
        status = await load_status(session, order)
        await audit(session, ActorKind.STAFF, staff_id, "staff_viewed", order_id=order.id, now=now)
    return status


def _echo(text: str) -> str:
    """What the staff member typed, short enough to quote back in a refusal."""
    return text if len(text) <= 64 else text[:63] + "…"


async def find_orders(
    store: Store, staff_id: int, text: str, *, limit: int = FIND_LIMIT
) -> FoundOrders:
    """Orders whose number, buyer (name or e-mail), or any ticket (reference, holder name or
    e-mail) contains ``text``, ignoring case and accents by Unicode's rules; at most ``limit``
    of them, by number. The search columns' trigram indexes serve it (storage/reads/search.py)."""
    text = " ".join(text.split())
    pattern = search.search_pattern(text)
    if len(pattern) < search.MIN_SEARCH_LENGTH:
        raise Refusal("staff_search_too_short", min=search.MIN_SEARCH_LENGTH)
    dialect = "sqlite" if store.is_sqlite else "postgresql"
    found = union(search.matching(Order.__table__, pattern, dialect),
                  search.matching(Ticket.__table__, pattern, dialect, "order_id"))
    now = utcnow()
    async with store.write() as session:
        orders = list(
            await session.scalars(
                select(Order)
                .where(Order.id.in_(found))
                .order_by(Order.number)
                .limit(limit + 1)
            )
        )
        shown = orders[:limit]
        counts = dict(
            (
                await session.execute(
                    select(Ticket.order_id, func.count(Ticket.id))
                    .where(
                        Ticket.order_id.in_([order.id for order in shown]),
                        not_gone(Ticket.state),
                    )
                    .group_by(Ticket.order_id)
                )
            ).all()
        )
        await audit(
            session,
            ActorKind.STAFF,
            staff_id,
            "staff_searched",
            now=now,
            query=text,
            found=len(orders),
        )
    return FoundOrders(
        orders=tuple(
            OrderMatch(
                order.id, order.number, order.buyer_name, order.buyer_email, counts.get(order.id, 0)
            )
            for order in shown
        ),
        more=len(orders) > limit,
    )


async def ticket_history(
    store: Store, staff_id: int, *, ref: str | None = None, ticket_id: int | None = None
) -> TicketHistory:
    """Everything the audit history holds about one ticket, oldest first; audited."""
    condition = Ticket.ref == ref.strip() if ref is not None else Ticket.id == ticket_id
    now = utcnow()
    async with store.write() as session:
        row = (
            await session.execute(
                select(Ticket, Order.number, Event.timezone)
                .join(Order, Order.id == Ticket.order_id)
                .join(Event, Event.id == Ticket.event_id)
                .where(condition)
            )
        ).first()
        if row is None:
            raise Refusal("staff_no_ticket", ref=_echo(ref) if ref is not None else str(ticket_id))
        ticket, order_number, timezone = row
        entries = list(
            await session.scalars(
                select(AuditEntry)
                .where(AuditEntry.ticket_id == ticket.id)
                .order_by(AuditEntry.id.desc())
                .limit(HISTORY_LIMIT + 1)
            )
        )
        await audit(
            session,
            ActorKind.STAFF,
            staff_id,
            "staff_viewed_history",
            order_id=ticket.order_id,
            ticket_id=ticket.id,
            now=now,
        )
    kept = entries[:HISTORY_LIMIT]
    return TicketHistory(
        ticket_id=ticket.id,
        ref=ticket.ref,
        order_number=order_number,
        timezone=timezone,
        entries=tuple(audit_line(entry, ticket.ref) for entry in reversed(kept)),
        truncated=len(entries) > HISTORY_LIMIT,
    )


# --- acting ----------------------------------------------------------------------------------


async def resend_order_invitations(store: Store, staff_id: int, number: str) -> ResentInvitations:
    """Send every pending invitation of the order again (their links' lifetime starts over);
    the mails go out after the commit. Refuses if there is none to send."""
    number = number.strip()
    now = utcnow()
    async with store.write() as session:
        order = await session.scalar(select(Order).where(Order.number == number))
        if order is None:
            raise Refusal("staff_no_order", number=_echo(number))
        rows = (
            await session.execute(
                select(Invitation, Ticket, Event)
                .join(Ticket, Ticket.id == Invitation.ticket_id)
                .join(Event, Event.id == Ticket.event_id)
                .where(Ticket.order_id == order.id, Invitation.state == InvitationState.PENDING)
                .order_by(Ticket.id)
            )
        ).all()
        emails: list[str] = []
        skipped = 0
        for invitation, ticket, event in rows:
            if not reading.personalisation_open(event, now):
                skipped += 1
                continue
            try:
                await renew_invitation(session, invitation, now, store.claim_link_ttl)
            except Refusal:
                continue  # claimed, declined or revoked a moment ago: nothing to resend
            await audit(
                session,
                ActorKind.STAFF,
                staff_id,
                "invitation_resent",
                order_id=order.id,
                ticket_id=ticket.id,
                now=now,
                invitation_id=invitation.id,
            )
            emails.append(invitation.email)
        if not emails and not skipped:
            raise Refusal("staff_nothing_to_resend", number=number)
    return ResentInvitations(order_number=number, emails=tuple(emails), skipped=skipped)
