"""An invitation's life, shared by the buyer's side (invite, resend, revoke) and the friend's
(accept, decline) and by expiry: the pending invitation of a ticket, its conditional move to a
final state, its e-mail in the outbox, the friend's grant to see it, and the ticket's return to
the buyer."""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.prepared import execute_in_session
from storage.errors import Refusal
from storage.models import (
    ClaimGrant,
    Invitation,
    InvitationState,
    LinkToken,
    OutboxMail,
    TelegramUser,
    Ticket,
    TicketState,
)
from storage.services.ticket_changes import change_ticket

# Built once, with bound parameters (journal.py says why).
_INSERT_MAIL = insert(OutboxMail.__table__)
# The friend's right to see the invitation, and the language they chose, in one statement.
_GRANTED = select(
    ClaimGrant.invitation_id,
    select(TelegramUser.chosen_language).where(TelegramUser.telegram_id == bindparam("user"))
    .scalar_subquery(),
).where(ClaimGrant.invitation_id == bindparam("invitation"),
        ClaimGrant.telegram_id == bindparam("user"))

_INVITATION_STATE = (select(Invitation.__table__.c.state)
                     .where(Invitation.__table__.c.id == bindparam("invitation")))


async def _pending_invitation(session: AsyncSession, ticket_id: int) -> Invitation:
    invitation = await session.scalar(
        select(Invitation).where(Invitation.ticket_id == ticket_id,
                                 Invitation.state == InvitationState.PENDING)
    )
    if invitation is None:
        raise Refusal("invitation_not_pending")
    return invitation


async def _finish_invitation(
    session: AsyncSession, invitation: Invitation, state: InvitationState, now: dt.datetime,
    **values: Any,
) -> None:
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(invitation=invitation.id, state=state, now=now)
    result = await execute_in_session(session, _invitation_finish(tuple(sorted(values))),
                                      params)
    if result.rowcount != 1:
        # Finished by someone else a moment before (PostgreSQL re-checks the row once their
        # transaction commits). A friend who lost to another's claim is told so, as a fresh
        # read of the invitation would have told them.
        current = (await execute_in_session(session, _INVITATION_STATE,
                                            {"invitation": invitation.id})).scalar()
        friend_side = state in (InvitationState.ACCEPTED, InvitationState.DECLINED)
        if friend_side and current == InvitationState.ACCEPTED:
            raise Refusal("link_used")
        raise Refusal("invitation_not_pending")


@functools.cache
def _invitation_finish(columns: tuple[str, ...]):
    """A pending invitation's conditional move to a final state, also setting ``columns``."""
    return (
        update(Invitation.__table__)
        .where(Invitation.id == bindparam("invitation"),
               Invitation.state == InvitationState.PENDING)
        .values(state=bindparam("state"), finished_at=bindparam("now"),
                **{name: bindparam(f"new_{name}") for name in columns})
    )


async def _queue_invitation_mail(session: AsyncSession, invitation_id: int, recipient: str,
                                 language: str, now: dt.datetime) -> None:
    await execute_in_session(session, _INSERT_MAIL, {
        # Short enough that the header is never folded; unique thanks to the random part.
        "message_id": f"<inv{invitation_id}.{secrets.token_hex(6)}@ticketbot.local>",
        "recipient": recipient, "language": language, "kind": "invitation",
        "params": {"invitation_id": invitation_id}, "created_at": now, "next_attempt_at": now,
        "attempts": 0, "sent_at": None, "last_error": None,
    })


async def renew_invitation(session: AsyncSession, invitation: Invitation, now: dt.datetime,
                           lifetime: dt.timedelta) -> None:
    """Queue a pending invitation's e-mail again; its link's lifetime starts over. Refuses if
    the invitation stopped being pending meanwhile."""
    expires_at = now + lifetime
    result = await session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.state == InvitationState.PENDING)
        .values(last_sent_at=now, expires_at=expires_at)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise Refusal("invitation_not_pending")
    await session.execute(
        update(LinkToken).where(LinkToken.invitation_id == invitation.id)
        .values(expires_at=expires_at)
    )
    await _queue_invitation_mail(session, invitation.id, invitation.email, invitation.language,
                                 now)


async def _return_to_buyer(
    session: AsyncSession, ticket: Ticket, invitation: Invitation, state: InvitationState,
    now: dt.datetime,
) -> None:
    await _finish_invitation(session, invitation, state, now)
    await change_ticket(session, ticket, TicketState.PENDING, now, state=TicketState.TO_ASSIGN,
                        holder_email=None, email_key=None)
    await session.execute(
        update(LinkToken).where(LinkToken.invitation_id == invitation.id,
                                LinkToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )


async def _require_grant(session: AsyncSession, telegram_id: int,
                         invitation_id: int) -> str | None:
    """Refuse unless this user opened the invitation's link; returns their chosen language."""
    granted = (await execute_in_session(
        session, _GRANTED, {"invitation": invitation_id, "user": telegram_id})).first()
    if granted is None:
        raise Refusal("not_found")
    return granted[1]
