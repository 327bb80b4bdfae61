"""The friend's side of an invitation: accept it in their own name, decline it; and the
invitations that ran out, whose tickets go back to their buyers."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import execute_in_session
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_name, name_key
from storage.models import (
    ActorKind,
    Event,
    Invitation,
    InvitationState,
    LinkToken,
    Ticket,
    TicketState,
)
from storage.reads import loading as reading
from storage.services.barcodes import reissue_barcode
from storage.services.invitations import _finish_invitation, _require_grant, _return_to_buyer
from storage.services.journal import audit, notify_order_managers
from storage.services.ticket_changes import _end_step, _require_personalisation, change_ticket
from storage.webhook_outbox import announce_assigned, announce_invitation

# Built once, with bound parameters (journal.py says why).
_USE_CLAIM_LINK = (update(LinkToken.__table__)
                   .where(LinkToken.invitation_id == bindparam("invitation"))
                   .values(used_at=bindparam("used")))


async def _granted_invitation(
    session: AsyncSession, telegram_id: int, invitation_id: int, now: dt.datetime
) -> tuple[Invitation, Ticket, Event]:
    await _require_grant(session, telegram_id, invitation_id)
    row = await reading.invitation_with_ticket(session, invitation_id)
    if row is None:
        raise Refusal("not_found")
    invitation, ticket, event = row
    if invitation.state == InvitationState.ACCEPTED:
        raise Refusal("link_used")
    if invitation.state != InvitationState.PENDING:
        raise Refusal("invitation_not_pending")
    if invitation.expires_at <= now:
        raise Refusal("link_expired")
    return invitation, ticket, event


async def accept_invitation(store: Store, telegram_id: int, invitation_id: int, name: str, *,
                            chat_id: int | None = None) -> str:
    """The friend claims the ticket in their own name; the buyer is told. Returns the name.
    ``chat_id``: the chat whose input step this completes, ended in the same transaction."""
    holder = clean_name(name)
    now = utcnow()

    async def accept(session: AsyncSession) -> None:
        await _end_step(session, chat_id)
        invitation, ticket, event = await _granted_invitation(session, telegram_id,
                                                              invitation_id, now)
        _require_personalisation(event, now)
        await _finish_invitation(session, invitation, InvitationState.ACCEPTED, now,
                                 claimed_by_telegram_id=telegram_id)
        barcode = await reissue_barcode(session, ticket, now)
        await change_ticket(session, ticket, TicketState.PENDING, now,
                            state=TicketState.COMPLETED, holder_name=holder,
                            name_key=name_key(holder), holder_telegram_id=telegram_id,
                            barcode=barcode)
        await execute_in_session(session, _USE_CLAIM_LINK,
                                 {"invitation": invitation.id, "used": now})
        await audit(session, ActorKind.FRIEND, telegram_id, "invitation_accepted",
                    order_id=ticket.order_id, ticket_id=ticket.id, now=now, holder=holder,
                    invitation_id=invitation.id)
        await announce_invitation(session, "invitation.claimed", invitation.id, ticket, now)
        await announce_assigned(session, ticket, holder=holder, barcode=barcode, now=now)
        await notify_order_managers(session, ticket.order_id, "invitation_accepted", now,
                                    skip=telegram_id, holder=holder, email=invitation.email,
                                    ticket_ref=ticket.ref)

    await store.write_whole(accept)
    return holder


async def decline_invitation(store: Store, telegram_id: int, invitation_id: int, *,
                             chat_id: int | None = None) -> None:
    """The friend declines; the ticket goes back to the buyer, who is told. ``chat_id``: the
    chat whose input step this completes, ended in the same transaction."""
    now = utcnow()
    async with store.write() as session:
        await _end_step(session, chat_id)
        invitation, ticket, _event = await _granted_invitation(session, telegram_id,
                                                               invitation_id, now)
        await _return_to_buyer(session, ticket, invitation, InvitationState.DECLINED, now)
        await audit(session, ActorKind.FRIEND, telegram_id, "invitation_declined",
                    order_id=ticket.order_id, ticket_id=ticket.id, now=now,
                    invitation_id=invitation.id)
        await announce_invitation(session, "invitation.declined", invitation.id, ticket, now)
        await notify_order_managers(session, ticket.order_id, "invitation_declined", now,
                                    skip=telegram_id, email=invitation.email,
                                    ticket_ref=ticket.ref)


async def expire_invitations(store: Store, *, now: dt.datetime | None = None,
                             limit: int = 200) -> int:
    """Return tickets of overdue invitations to their buyers (one transaction each)."""
    now = now or utcnow()
    async with store.read() as session:
        due = list(await session.scalars(
            select(Invitation.id).where(Invitation.state == InvitationState.PENDING,
                                        Invitation.expires_at <= now).limit(limit)
        ))
    expired = 0
    for invitation_id in due:
        try:
            await _expire_one(store, invitation_id, now)
            expired += 1
        except Refusal:
            continue  # accepted, revoked or expired by someone else meanwhile
    return expired


async def _expire_one(store: Store, invitation_id: int, now: dt.datetime) -> None:
    async with store.write() as session:
        invitation = await session.get(Invitation, invitation_id)
        assert invitation is not None
        ticket = await session.get(Ticket, invitation.ticket_id)
        assert ticket is not None
        await _return_to_buyer(session, ticket, invitation, InvitationState.EXPIRED, now)
        await audit(session, ActorKind.SYSTEM, None, "invitation_expired", order_id=ticket.order_id,
                    ticket_id=ticket.id, now=now, invitation_id=invitation.id)
        await announce_invitation(session, "invitation.expired", invitation.id, ticket, now)
        await notify_order_managers(session, ticket.order_id, "invitation_expired", now,
                                    email=invitation.email, ticket_ref=ticket.ref)
