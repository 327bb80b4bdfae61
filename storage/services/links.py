"""Links: buyer links of an order (created, revoked) and what opening a ``/start`` parameter
does: grant the order, or show a friend the ticket waiting for them."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, bindparam, select, update

from storage import tokens
from storage.db.prepared import PreparedConnection
from storage.db.store import Store, utcnow
from storage.db.upsert import insert_ignore_statement
from storage.errors import Refusal
from storage.models import (
    ActorKind,
    ClaimGrant,
    InvitationState,
    LinkKind,
    LinkToken,
    Order,
    OrderAccess,
)
from storage.reads import loading as reading
from storage.reads.views import (
    ClaimView,
    LinkOpened,
)
from storage.services.invitations import _require_grant
from storage.services.journal import audit, audit_entry
from storage.services.users import _count_failed_start, _remember_on


async def create_order_link(store: Store, order_number: str) -> str:
    """A new buyer link token for the order (only its hash is kept)."""
    return (await create_order_links(store, [order_number]))[order_number]


async def create_order_links(store: Store, order_numbers: Sequence[str]) -> dict[str, str]:
    """A new buyer link token for each order, in one transaction; refuses them all if one of
    the orders does not exist. Returns the tokens by order number."""
    secret = await store.secret()
    wanted = sorted(set(order_numbers))
    now = utcnow()
    async with store.write() as session:
        order_ids: dict[str, int] = {}
        # A few hundred at a time: older SQLite builds allow 999 parameters per statement.
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = await session.execute(
                select(Order.number, Order.id).where(Order.number.in_(chunk)))
            # A Result has .keys(), so dict.update would take it for a mapping: list the rows.
            order_ids.update((number, order_id) for number, order_id in rows)
        if len(order_ids) != len(wanted):
            raise Refusal("not_found")
        links = {number: tokens.new_token() for number in wanted}
        session.add_all(
            LinkToken(token_hash=tokens.hash_token(secret, token), kind=LinkKind.ORDER,
                      order_id=order_ids[number], created_at=now)
            for number, token in links.items()
        )
        for number in wanted:
            await audit(session, ActorKind.SYSTEM, None, "order_link_created",
                        order_id=order_ids[number], now=now)
    return links


async def revoke_order_links(store: Store, order_number: str) -> int:
    """Withdraw every buyer link of the order; returns how many were live."""
    now = utcnow()
    async with store.write() as session:
        order_id = await session.scalar(select(Order.id).where(Order.number == order_number))
        if order_id is None:
            raise Refusal("not_found")
        result = await session.execute(
            update(LinkToken)
            .where(LinkToken.order_id == order_id, LinkToken.kind == LinkKind.ORDER,
                   LinkToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        await audit(session, ActorKind.SYSTEM, None, "order_links_revoked", order_id=order_id,
                    now=now)
        return result.rowcount


async def open_link(store: Store, telegram_id: int, parameter: str, *,
                    language_code: str | None = None, chat_id: int | None = None) -> LinkOpened:
    """Resolve a ``/start`` parameter: grant the order, or show the claim. Wrong ones are
    counted, and after a few the user must wait (stored, so every process agrees).

    In the same transaction the user is remembered with their app's ``language_code`` and the
    chat (``chat_id``) leaves any input step: a link starts over, whether it opens or not."""
    secret = await store.secret()
    now = utcnow()
    key = tokens.link_key(secret, parameter)

    def open_on(connection: PreparedConnection) -> LinkOpened | Refusal | None:
        user = _remember_on(connection, store.dialect, telegram_id, language_code, now,
                            chat_id=chat_id)
        # Every refusal comes before any change of the link's: what is committed with it is
        # the user and the step above. None: no such link.
        try:
            if user.blocked_until is not None and user.blocked_until > now:
                raise Refusal("too_many_attempts")
            links = connection.execute(_READ_LINK, {"key": key}).all() if key else ()
            if not links:
                return None
            opened = _open_valid_link(connection, store.dialect, telegram_id, links[0], now)
            return dataclasses.replace(opened, viewer_language=user.chosen_language)
        except Refusal as refused:
            return refused

    # A good link grants the same however often it is opened, so this transaction may be
    # repeated when a /start is replayed after a crash (and the step set after it with it).
    outcome = await store.write_prepared(open_on, idempotent=True)
    if isinstance(outcome, LinkOpened):
        return outcome
    if outcome is not None:
        raise outcome
    # A wrong link is counted once per /start, however often that update is handled.
    async with store.write() as session:
        await _count_failed_start(session, telegram_id, now)
    raise Refusal("link_invalid")


_links = LinkToken.__table__
_READ_LINK = select(_links.c.kind, _links.c.order_id, _links.c.invitation_id,
                    _links.c.expires_at, _links.c.used_at, _links.c.revoked_at).where(
    _links.c.token_hash == bindparam("key"))


def _open_valid_link(connection: PreparedConnection, dialect: str, telegram_id: int,
                     link: Row, now: dt.datetime) -> LinkOpened:
    if link.revoked_at is not None:
        raise _revoked_refusal(
            reading.invitation_with_ticket_on(connection, link.invitation_id)
            if link.invitation_id is not None else None)
    if link.kind == LinkKind.ORDER:
        # Recorded the first time only: opening the order again changes nothing.
        granted = connection.execute(insert_ignore_statement(dialect, OrderAccess), {
            "telegram_id": telegram_id, "order_id": link.order_id, "granted_at": now})
        if granted.rowcount == 1:
            connection.execute(*audit_entry(ActorKind.BUYER, telegram_id, "order_opened",
                                            order_id=link.order_id, now=now))
        return LinkOpened(order_id=link.order_id)
    if link.used_at is not None:
        raise Refusal("link_used")
    if link.expires_at is not None and link.expires_at <= now:
        raise Refusal("link_expired")
    assert link.invitation_id is not None
    connection.execute(insert_ignore_statement(dialect, ClaimGrant), {
        "invitation_id": link.invitation_id, "telegram_id": telegram_id, "granted_at": now})
    return LinkOpened(claim=_claim_view(
        reading.invitation_with_ticket_on(connection, link.invitation_id), now))


def _revoked_refusal(found: tuple[Any, Any, Any] | None) -> Refusal:
    """Why a void link no longer works, saying who did what: a claim link goes void when its
    sender withdraws the invitation, but also when its recipient declines the ticket or the
    invitation expires. ``found``: the claim link's invitation, ticket and event."""
    state = found[0].state if found is not None else None
    if state == InvitationState.DECLINED:
        return Refusal("link_declined", sender=found[0].inviter_name)
    if state == InvitationState.EXPIRED:
        return Refusal("link_expired")
    return Refusal("link_revoked")


def _claim_view(found: tuple[Any, Any, Any] | None, now: dt.datetime) -> ClaimView:
    """The claim screen of an invitation, its ticket and event (the records of
    ``invitation_with_ticket``), or why it cannot be claimed."""
    if found is None:
        raise Refusal("not_found")
    invitation, ticket, event = found
    if invitation.state == InvitationState.ACCEPTED:
        raise Refusal("link_used")
    if invitation.state == InvitationState.EXPIRED or (
        invitation.state == InvitationState.PENDING and invitation.expires_at <= now
    ):
        raise Refusal("link_expired")
    if invitation.state == InvitationState.DECLINED:
        raise Refusal("link_declined", sender=invitation.inviter_name)
    if invitation.state != InvitationState.PENDING:
        raise Refusal("link_revoked")
    return ClaimView(
        invitation_id=invitation.id, inviter_name=invitation.inviter_name,
        email=invitation.email, expires_at=invitation.expires_at,
        event=reading.event_view(event), category=ticket.category, ticket_ref=ticket.ref,
    )


async def claim_view(store: Store, telegram_id: int, invitation_id: int) -> ClaimView:
    """The claim screen again, for someone who opened the link; the language they chose comes
    with it."""
    async with store.read() as session:
        language = await _require_grant(session, telegram_id, invitation_id)
        view = _claim_view(await reading.invitation_with_ticket(session, invitation_id),
                           utcnow())
    return dataclasses.replace(view, viewer_language=language)
