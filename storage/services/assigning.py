"""Assigning a ticket (the buyer's side): claim it for myself, invite a friend by e-mail,
send the invitation again, withdraw it."""

from __future__ import annotations

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from storage import tokens
from storage.db.prepared import execute_in_session
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_email, clean_name, email_key, name_key
from storage.models import (
    ActorKind,
    Invitation,
    InvitationState,
    LinkKind,
    LinkToken,
    Ticket,
    TicketState,
)
from storage.reads.views import InviteResult
from storage.services.barcodes import reissue_barcode
from storage.services.invitations import (
    _pending_invitation,
    _queue_invitation_mail,
    _return_to_buyer,
    renew_invitation,
)
from storage.services.journal import audit
from storage.services.language import _language_of
from storage.services.ticket_changes import (
    _end_step,
    _require_personalisation,
    change_ticket,
    managed_ticket,
)
from storage.webhook_outbox import announce_assigned, announce_invitation

# Built once, with bound parameters (journal.py says why).
_INSERT_INVITATION = insert(Invitation.__table__).returning(Invitation.id)
_INSERT_LINK = insert(LinkToken.__table__)
_ADDRESS_HOLDER = (select(Ticket.__table__.c.id)
                   .where(Ticket.__table__.c.event_id == bindparam("event"),
                          Ticket.__table__.c.email_key == bindparam("key"))
                   .limit(1))


async def claim_for_myself(store: Store, telegram_id: int, ticket_id: int, name: str, *,
                           chat_id: int | None = None) -> str:
    """Put the ticket in the buyer's name (as typed or confirmed); returns the clean name.
    ``chat_id``: the chat whose input step this completes, ended in the same transaction."""
    holder = clean_name(name)
    try:
        await _claim(store, telegram_id, ticket_id, holder, chat_id, with_address=True)
    except Refusal as refusal:
        if refusal.code != "email_taken":
            raise
        # Another ticket took her address between our read and our write (two of her claims
        # at once): the refused attempt committed nothing; this ticket is hers without it.
        await _claim(store, telegram_id, ticket_id, holder, chat_id, with_address=False)
    return holder


async def _claim(store: Store, telegram_id: int, ticket_id: int, holder: str,
                 chat_id: int | None, *, with_address: bool) -> None:
    now = utcnow()

    async def claim(session: AsyncSession) -> None:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        _require_personalisation(event, now)
        if ticket.state != TicketState.TO_ASSIGN:
            raise Refusal("not_assignable")
        address = (await _own_address(session, event.id, order.buyer_email) if with_address
                   else None)
        barcode = await reissue_barcode(session, ticket, now)
        await change_ticket(
            session, ticket, TicketState.TO_ASSIGN, now, state=TicketState.COMPLETED,
            holder_name=holder, name_key=name_key(holder), holder_email=address,
            email_key=email_key(address) if address else None,
            holder_telegram_id=telegram_id, barcode=barcode,
        )
        await audit(session, ActorKind.BUYER, telegram_id, "claimed_for_self", order_id=order.id,
                    ticket_id=ticket.id, now=now, holder=holder)
        await announce_assigned(session, ticket, holder=holder, barcode=barcode, now=now)

    await store.write_whole(claim)


async def _own_address(session: AsyncSession, event_id: str, buyer_email: str) -> str | None:
    """The address a ticket the buyer claims for herself carries: hers, unless another ticket
    of the event carries it already (one address per event). Her first own ticket takes it, and
    the unique ``(event_id, email_key)`` then refuses sending another ticket to it; a second one
    she keeps in Telegram carries no address. Should another ticket take her address between
    this read and the write, the constraint refuses this write (``email_taken``), and
    ``claim_for_myself`` claims the ticket again without the address."""
    if not buyer_email:
        return None
    taken = (await execute_in_session(session, _ADDRESS_HOLDER, {
        "event": event_id, "key": email_key(buyer_email)})).scalar()
    return None if taken is not None else buyer_email


async def invite_friend(store: Store, telegram_id: int, ticket_id: int, email: str, *,
                        chat_id: int | None = None) -> InviteResult:
    """Send the ticket to a friend's e-mail: the ticket becomes pending and a mail is queued.
    ``chat_id``: the chat whose input step this completes, ended in the same transaction."""
    address = clean_email(email)
    secret = await store.secret()
    now = utcnow()

    async def invite(session: AsyncSession) -> InviteResult:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        _require_personalisation(event, now)
        if ticket.state != TicketState.TO_ASSIGN:
            raise Refusal("not_assignable")
        await change_ticket(session, ticket, TicketState.TO_ASSIGN, now,
                            state=TicketState.PENDING, holder_email=address,
                            email_key=email_key(address))
        language = await _language_of(session, telegram_id, order)
        expires_at = now + store.claim_link_ttl
        invitation_id = (await execute_in_session(session, _INSERT_INVITATION, {
            "ticket_id": ticket.id, "email": address, "state": InvitationState.PENDING,
            "invited_by_telegram_id": telegram_id, "inviter_name": order.buyer_name,
            "language": language, "created_at": now, "expires_at": expires_at,
            "last_sent_at": now, "finished_at": None, "claimed_by_telegram_id": None,
        })).scalar_one()
        token = tokens.claim_token(secret, invitation_id)
        await execute_in_session(session, _INSERT_LINK, {
            "token_hash": tokens.hash_token(secret, token), "kind": LinkKind.CLAIM,
            "order_id": order.id, "invitation_id": invitation_id, "created_at": now,
            "expires_at": expires_at, "used_at": None, "revoked_at": None,
        })
        await _queue_invitation_mail(session, invitation_id, address, language, now)
        await audit(session, ActorKind.BUYER, telegram_id, "invited", order_id=order.id,
                    ticket_id=ticket.id, now=now, email=address, invitation_id=invitation_id)
        await announce_invitation(session, "invitation.sent", invitation_id, ticket, now)
        return InviteResult(invitation_id=invitation_id, email=address, claim_token=token)

    return await store.write_whole(invite)


async def resend_invitation(store: Store, telegram_id: int, ticket_id: int) -> InviteResult:
    """Send the invitation e-mail again; the link's lifetime starts over."""
    secret = await store.secret()
    now = utcnow()
    async with store.write() as session:
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        _require_personalisation(event, now)
        invitation = await _pending_invitation(session, ticket.id)
        await renew_invitation(session, invitation, now, store.claim_link_ttl)
        await audit(session, ActorKind.BUYER, telegram_id, "invitation_resent", order_id=order.id,
                    ticket_id=ticket.id, now=now, invitation_id=invitation.id)
        await announce_invitation(session, "invitation.sent", invitation.id, ticket, now)
    return InviteResult(invitation.id, invitation.email, tokens.claim_token(secret, invitation.id))


async def revoke_invitation(store: Store, telegram_id: int, ticket_id: int) -> str:
    """Withdraw a pending invitation; the ticket goes back to *to assign*. Returns the e-mail."""
    now = utcnow()
    async with store.write() as session:
        ticket, _event, order = await managed_ticket(session, telegram_id, ticket_id)
        invitation = await _pending_invitation(session, ticket.id)
        await _return_to_buyer(session, ticket, invitation, InvitationState.REVOKED, now)
        await audit(session, ActorKind.BUYER, telegram_id, "invitation_revoked", order_id=order.id,
                    ticket_id=ticket.id, now=now, invitation_id=invitation.id)
        await announce_invitation(session, "invitation.revoked", invitation.id, ticket, now)
    return invitation.email
