"""Assigning a ticket (the buyer's side): claim it for myself, invite a friend by e-mail,
send the invitation again, withdraw it."""

from __future__ import annotations

from sqlalchemy import insert

from storage import tokens
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_email, clean_name, email_key, name_key
from storage.models import (
    ActorKind,
    Invitation,
    InvitationState,
    LinkKind,
    LinkToken,
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


async def claim_for_myself(store: Store, telegram_id: int, ticket_id: int, name: str, *,
                           chat_id: int | None = None) -> str:
    """Put the ticket in the buyer's name (as typed or confirmed); returns the clean name.
    ``chat_id``: the chat whose input step this completes, ended in the same transaction."""
    holder = clean_name(name)
    now = utcnow()
    async with store.write() as session:
        await _end_step(session, chat_id)
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        _require_personalisation(event, now)
        if ticket.state != TicketState.TO_ASSIGN:
            raise Refusal("not_assignable")
        barcode = await reissue_barcode(session, ticket, now)
        await change_ticket(
            session, ticket, TicketState.TO_ASSIGN, now, state=TicketState.COMPLETED,
            # The e-mail rule is about addresses tickets are sent to; a self-claim sends nothing.
            holder_name=holder, name_key=name_key(holder), holder_email=order.buyer_email,
            holder_telegram_id=telegram_id, barcode=barcode,
        )
        await audit(session, ActorKind.BUYER, telegram_id, "claimed_for_self", order_id=order.id,
                    ticket_id=ticket.id, now=now, holder=holder)
        await announce_assigned(session, ticket, holder=holder, barcode=barcode, now=now)
    return holder


async def invite_friend(store: Store, telegram_id: int, ticket_id: int, email: str, *,
                        chat_id: int | None = None) -> InviteResult:
    """Send the ticket to a friend's e-mail: the ticket becomes pending and a mail is queued.
    ``chat_id``: the chat whose input step this completes, ended in the same transaction."""
    address = clean_email(email)
    secret = await store.secret()
    now = utcnow()
    async with store.write() as session:
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
        connection = await session.connection()
        invitation_id = (await connection.execute(_INSERT_INVITATION, {
            "ticket_id": ticket.id, "email": address, "state": InvitationState.PENDING,
            "invited_by_telegram_id": telegram_id, "inviter_name": order.buyer_name,
            "language": language, "created_at": now, "expires_at": expires_at,
            "last_sent_at": now, "finished_at": None, "claimed_by_telegram_id": None,
        })).scalar_one()
        token = tokens.claim_token(secret, invitation_id)
        await connection.execute(_INSERT_LINK, {
            "token_hash": tokens.hash_token(secret, token), "kind": LinkKind.CLAIM,
            "order_id": order.id, "invitation_id": invitation_id, "created_at": now,
            "expires_at": expires_at, "used_at": None, "revoked_at": None,
        })
        await _queue_invitation_mail(session, invitation_id, address, language, now)
        await audit(session, ActorKind.BUYER, telegram_id, "invited", order_id=order.id,
                    ticket_id=ticket.id, now=now, email=address, invitation_id=invitation_id)
        await announce_invitation(session, "invitation.sent", invitation_id, ticket, now)
    return InviteResult(invitation_id=invitation_id, email=address, claim_token=token)


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
