"""The use cases of buyers and friends: one function each, one transaction each.

Every function takes the store and plain values, checks the caller's right to act inside the
same transaction, changes ticket state only with conditional updates (``WHERE state = … AND
version = …``) and lets the unique constraints reject the loser of a race. Mails and chat news
are written to outbox tables in that same transaction and sent after it commits.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, and_, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from storage import barcode_feed, chat_state, reading, search, ticket_delivery, tokens
from storage.database import Store, utcnow
from storage.errors import Refusal
from storage.keys import clean_email, clean_name, email_key, name_key
from storage.models import (
    ActorKind,
    AuditEntry,
    ChatNotification,
    ClaimGrant,
    Event,
    Invitation,
    InvitationState,
    LinkKind,
    LinkToken,
    Order,
    OrderAccess,
    OutboxMail,
    TelegramUser,
    Ticket,
    TicketState,
)
from storage.upsert import insert_ignore, upsert
from storage.views import (
    ClaimView,
    Home,
    InviteResult,
    LinkOpened,
    OrderView,
    TicketDetails,
    UserView,
)

MAX_FAILED_STARTS = 5
START_COOLDOWN = dt.timedelta(minutes=5)


# --- small building blocks -------------------------------------------------------------------


def new_barcode() -> str:
    """A 16-digit barcode; uniqueness is guaranteed by the ``barcodes`` primary key."""
    return f"{secrets.randbelow(10**16):016d}"


# The statements of the busiest use cases are built once, with bound parameters, and run on
# the session's connection: building a statement and working out its cache key each time cost
# more CPU than running it, and an entity added to the session costs a unit-of-work flush.
_INSERT_AUDIT = insert(AuditEntry.__table__)
_MANAGERS = select(OrderAccess.telegram_id).where(OrderAccess.order_id == bindparam("order"))
_INSERT_NEWS = insert(ChatNotification.__table__)
_INSERT_INVITATION = insert(Invitation.__table__).returning(Invitation.id)
_INSERT_LINK = insert(LinkToken.__table__)
_INSERT_MAIL = insert(OutboxMail.__table__)
_GRANTED = select(ClaimGrant.invitation_id).where(
    ClaimGrant.invitation_id == bindparam("invitation"),
    ClaimGrant.telegram_id == bindparam("user"))
_USE_CLAIM_LINK = (update(LinkToken.__table__)
                   .where(LinkToken.invitation_id == bindparam("invitation"))
                   .values(used_at=bindparam("used")))
_MANAGED_TICKET = (
    select(Ticket, Event, Order)
    .join(Event, Event.id == Ticket.event_id)
    .join(Order, Order.id == Ticket.order_id)
    .join(OrderAccess, and_(OrderAccess.order_id == Order.id,
                            OrderAccess.telegram_id == bindparam("user")))
    .where(Ticket.id == bindparam("ticket"))
)


async def audit(
    session: AsyncSession,
    actor: ActorKind,
    actor_id: int | None,
    action: str,
    *,
    order_id: int | None = None,
    ticket_id: int | None = None,
    now: dt.datetime,
    **details: Any,
) -> None:
    await (await session.connection()).execute(_INSERT_AUDIT, {
        "at": now, "actor_kind": actor, "actor_telegram_id": actor_id, "action": action,
        "order_id": order_id, "ticket_id": ticket_id, "details": details,
    })


async def notify_order_managers(
    session: AsyncSession, order_id: int, kind: str, now: dt.datetime, *,
    skip: int | None = None, **params: Any,
) -> None:
    """Queue chat news for everyone who manages the order (but the one who caused it)."""
    connection = await session.connection()
    managers = (await connection.execute(_MANAGERS, {"order": order_id})).scalars()
    news = [{"telegram_id": telegram_id, "kind": kind, "params": {"order_id": order_id, **params},
             "created_at": now, "next_attempt_at": now, "attempts": 0, "sent_at": None}
            for telegram_id in managers if telegram_id != skip]
    if news:
        await connection.execute(_INSERT_NEWS, news)


async def change_ticket(
    session: AsyncSession, ticket: Ticket, expected: TicketState, now: dt.datetime,
    **values: Any,
) -> None:
    """Move a ticket out of ``expected`` state, or refuse if someone changed it first."""
    if "holder_name" in values or "holder_email" in values:
        values["search_key"] = search.search_key(
            ticket.ref, values.get("holder_name", ticket.holder_name),
            values.get("holder_email", ticket.holder_email))
    params = {f"new_{name}": value for name, value in values.items()}
    params.update(ticket=ticket.id, expected=expected, version_seen=ticket.version, now=now)
    try:
        result = await (await session.connection()).execute(
            _ticket_change(tuple(sorted(values))), params)
    except IntegrityError as error:
        raise _uniqueness_refusal(error, values) from None
    if result.rowcount != 1:
        used = await session.scalar(select(Ticket.used_at).where(Ticket.id == ticket.id))
        raise Refusal("ticket_used" if used is not None else "ticket_changed")


@functools.cache
def _ticket_change(columns: tuple[str, ...]):
    """The conditional update of a ticket setting ``columns`` (a handful of combinations)."""
    return (
        update(Ticket.__table__)
        .where(Ticket.id == bindparam("ticket"), Ticket.state == bindparam("expected"),
               Ticket.version == bindparam("version_seen"),
               # Scanned in at the gate: nothing about it changes any more.
               Ticket.used_at.is_(None))
        .values(version=Ticket.version + 1, updated_at=bindparam("now"),
                **{name: bindparam(f"new_{name}") for name in columns})
    )


def _uniqueness_refusal(error: IntegrityError, values: dict[str, Any]) -> Refusal:
    text = str(error.orig)
    if "uq_tickets_event_name" in text or "tickets.event_id, tickets.name_key" in text:
        return Refusal("name_taken", name=values.get("holder_name", ""))
    if "uq_tickets_event_email" in text or "tickets.event_id, tickets.email_key" in text:
        return Refusal("email_taken", email=values.get("holder_email", ""))
    raise error


async def void_barcode(session: AsyncSession, code: str, now: dt.datetime) -> None:
    await barcode_feed.void(session, code, now)
    await ticket_delivery.barcode_voided(session, code, now)


async def reissue_barcode(session: AsyncSession, ticket: Ticket, now: dt.datetime) -> str:
    """Void the ticket's barcode and issue a new one (a copy of the old ticket gets nobody in)."""
    code = new_barcode()
    await void_barcode(session, ticket.barcode, now)
    await barcode_feed.issue(session, ticket, code, now)
    return code


async def managed_ticket(
    session: AsyncSession, telegram_id: int, ticket_id: int
) -> tuple[Ticket, Event, Order]:
    row = (await session.execute(_MANAGED_TICKET, {"user": telegram_id, "ticket": ticket_id})
           ).first()
    if row is None:
        raise Refusal("not_found")
    return tuple(row)


def _require_personalisation(event: Event, now: dt.datetime) -> None:
    if not event.personalisation_enabled:
        raise Refusal("personalisation_off")
    if not reading.personalisation_open(event, now):
        raise Refusal("personalisation_closed", deadline=event.personalisation_deadline,
                      timezone=event.timezone)


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
    result = await (await session.connection()).execute(
        _invitation_finish(tuple(sorted(values))), params)
    if result.rowcount != 1:
        # Finished by someone else a moment before (PostgreSQL re-checks the row once their
        # transaction commits). A friend who lost to another's claim is told so, as a fresh
        # read of the invitation would have told them.
        current = await session.scalar(select(Invitation.state)
                                       .where(Invitation.id == invitation.id))
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
    await (await session.connection()).execute(_INSERT_MAIL, {
        # Short enough that the header is never folded; unique thanks to the random part.
        "message_id": f"<inv{invitation_id}.{secrets.token_hex(6)}@ticketbot.local>",
        "recipient": recipient, "language": language, "kind": "invitation",
        "params": {"invitation_id": invitation_id}, "created_at": now, "next_attempt_at": now,
        "attempts": 0, "sent_at": None, "last_error": None,
    })


# --- users, links and reading ----------------------------------------------------------------


async def record_user(store: Store, telegram_id: int, language_code: str | None, *,
                      chat_id: int | None = None) -> UserView:
    """Remember a Telegram user (and the language their app reports); with ``chat_id``, that
    chat also leaves any input step, in the same transaction (a /start starts over)."""
    # Idempotent: repeating it on a replayed update changes nothing more.
    async with store.write(idempotent=True) as session:
        await _end_step(session, chat_id)
        user = await _remember_user(session, telegram_id, language_code, utcnow())
        return UserView(telegram_id, user.chosen_language, user.telegram_language)


async def _remember_user(session: AsyncSession, telegram_id: int, language_code: str | None,
                         now: dt.datetime) -> Row:
    """Insert the user or update their app's language, and read back what the answer needs
    (chosen and app language, cool-down) in the same statement."""
    return await upsert(session, TelegramUser,
                        {"telegram_id": telegram_id, "telegram_language": language_code,
                         "failed_starts": 0, "created_at": now},
                        index=["telegram_id"], update=["telegram_language"],
                        returning=["chosen_language", "telegram_language", "blocked_until"])


_users = TelegramUser.__table__
_READ_USER = select(_users.c.chosen_language, _users.c.telegram_language).where(
    _users.c.telegram_id == bindparam("user"))


async def load_user(store: Store, telegram_id: int) -> UserView | None:
    async with store.read_connection() as connection:
        user = (await connection.execute(_READ_USER, {"user": telegram_id})).first()
    return None if user is None else UserView(telegram_id, *user)


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
    refusal = None
    # A good link grants the same however often it is opened, so this transaction may be
    # repeated when a /start is replayed after a crash (and the step set after it with it).
    async with store.write(idempotent=True) as session:
        user = await _remember_user(session, telegram_id, language_code, now)
        await _end_step(session, chat_id)
        try:
            # Every refusal comes before any change of the link's: what is committed with it
            # is the user and the step above.
            if user.blocked_until is not None and user.blocked_until > now:
                raise Refusal("too_many_attempts")
            link = None
            if tokens.looks_like_token(parameter):
                link = await session.get(LinkToken, tokens.hash_token(secret, parameter))
            if link is not None:
                opened = await _open_valid_link(session, telegram_id, link, now)
                return dataclasses.replace(opened, viewer_language=user.chosen_language)
        except Refusal as refused:
            refusal = refused
    if refusal is not None:
        raise refusal
    # A wrong link is counted once per /start, however often that update is handled.
    async with store.write() as session:
        await _count_failed_start(session, telegram_id, now)
    raise Refusal("link_invalid")


async def _count_failed_start(session: AsyncSession, telegram_id: int, now: dt.datetime) -> None:
    await upsert(session, TelegramUser,
                 {"telegram_id": telegram_id, "failed_starts": 0, "created_at": now},
                 index=["telegram_id"], update=[])
    await session.execute(
        update(TelegramUser).where(TelegramUser.telegram_id == telegram_id)
        .values(failed_starts=TelegramUser.failed_starts + 1)
    )
    failures = await session.scalar(
        select(TelegramUser.failed_starts).where(TelegramUser.telegram_id == telegram_id)
    )
    if failures is not None and failures >= MAX_FAILED_STARTS:
        await session.execute(
            update(TelegramUser).where(TelegramUser.telegram_id == telegram_id)
            .values(failed_starts=0, blocked_until=now + START_COOLDOWN)
        )


async def _open_valid_link(
    session: AsyncSession, telegram_id: int, link: LinkToken, now: dt.datetime
) -> LinkOpened:
    if link.revoked_at is not None:
        raise Refusal("link_revoked")
    if link.kind == LinkKind.ORDER:
        # Recorded the first time only: opening the order again changes nothing.
        if await insert_ignore(session, OrderAccess, {"telegram_id": telegram_id,
                                                      "order_id": link.order_id,
                                                      "granted_at": now}):
            await audit(session, ActorKind.BUYER, telegram_id, "order_opened",
                        order_id=link.order_id, now=now)
        return LinkOpened(order_id=link.order_id)
    if link.used_at is not None:
        raise Refusal("link_used")
    if link.expires_at is not None and link.expires_at <= now:
        raise Refusal("link_expired")
    assert link.invitation_id is not None
    await insert_ignore(session, ClaimGrant, {"invitation_id": link.invitation_id,
                                              "telegram_id": telegram_id, "granted_at": now})
    return LinkOpened(claim=await _claim_view(session, link.invitation_id, now))


async def _claim_view(session: AsyncSession, invitation_id: int, now: dt.datetime) -> ClaimView:
    row = await reading.invitation_with_ticket(session, invitation_id)
    if row is None:
        raise Refusal("not_found")
    invitation, ticket, event = row
    if invitation.state == InvitationState.ACCEPTED:
        raise Refusal("link_used")
    if invitation.state == InvitationState.EXPIRED or (
        invitation.state == InvitationState.PENDING and invitation.expires_at <= now
    ):
        raise Refusal("link_expired")
    if invitation.state != InvitationState.PENDING:
        raise Refusal("link_revoked")
    return ClaimView(
        invitation_id=invitation.id, inviter_name=invitation.inviter_name,
        email=invitation.email, expires_at=invitation.expires_at,
        event=reading.event_view(event), category=ticket.category, ticket_ref=ticket.ref,
    )


async def claim_view(store: Store, telegram_id: int, invitation_id: int) -> ClaimView:
    """The claim screen again, for someone who opened the link."""
    async with store.read() as session:
        await _require_grant(session, telegram_id, invitation_id)
        return await _claim_view(session, invitation_id, utcnow())


async def _require_grant(session: AsyncSession, telegram_id: int, invitation_id: int) -> None:
    granted = (await (await session.connection()).execute(
        _GRANTED, {"invitation": invitation_id, "user": telegram_id})).first()
    if granted is None:
        raise Refusal("not_found")


async def home(store: Store, telegram_id: int) -> Home:
    async with store.read() as session:
        return await reading.load_home(session, telegram_id)


async def order_overview(store: Store, telegram_id: int, order_id: int) -> OrderView:
    async with store.read_connection() as connection:
        return await reading.load_order(connection, telegram_id, utcnow(), order_id=order_id)


async def ticket_details(store: Store, telegram_id: int, ticket_id: int) -> TicketDetails:
    """A ticket with its order and event, if this user may manage it."""
    async with store.read_connection() as connection:
        order = await reading.load_order(connection, telegram_id, utcnow(), ticket_id=ticket_id)
    ticket = next((t for t in order.tickets if t.id == ticket_id), None)
    if ticket is None:
        raise Refusal("not_found")
    return TicketDetails(order=order, ticket=ticket, event=order.events[ticket.event_id])


async def _end_step(session: AsyncSession, chat_id: int | None) -> None:
    # First, so that a refusal rolls it back with the rest: the user may try the step again.
    if chat_id is not None:
        await chat_state.end_step(session, chat_id)


# --- assigning a ticket ----------------------------------------------------------------------


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
    return InviteResult(invitation_id=invitation_id, email=address, claim_token=token)


async def _language_of(session: AsyncSession, telegram_id: int, order: Order) -> str:
    """The language the user sees the bot in: their choice, their app's, else the order's."""
    user = (await (await session.connection()).execute(_READ_USER, {"user": telegram_id})
            ).first()
    for candidate in (user and user.chosen_language, user and user.telegram_language):
        if candidate and candidate[:2].lower() in ("fr", "en"):
            return candidate[:2].lower()
    return order.language if order.language in ("fr", "en") else "en"


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
    return InviteResult(invitation.id, invitation.email, tokens.claim_token(secret, invitation.id))


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


async def revoke_invitation(store: Store, telegram_id: int, ticket_id: int) -> str:
    """Withdraw a pending invitation; the ticket goes back to *to assign*. Returns the e-mail."""
    now = utcnow()
    async with store.write() as session:
        ticket, _event, order = await managed_ticket(session, telegram_id, ticket_id)
        invitation = await _pending_invitation(session, ticket.id)
        await _return_to_buyer(session, ticket, invitation, InvitationState.REVOKED, now)
        await audit(session, ActorKind.BUYER, telegram_id, "invitation_revoked", order_id=order.id,
                    ticket_id=ticket.id, now=now, invitation_id=invitation.id)
    return invitation.email


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


# --- the friend's side -----------------------------------------------------------------------


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
    async with store.write() as session:
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
        await (await session.connection()).execute(
            _USE_CLAIM_LINK, {"invitation": invitation.id, "used": now})
        await audit(session, ActorKind.FRIEND, telegram_id, "invitation_accepted",
                    order_id=ticket.order_id, ticket_id=ticket.id, now=now, holder=holder,
                    invitation_id=invitation.id)
        await notify_order_managers(session, ticket.order_id, "invitation_accepted", now,
                                    skip=telegram_id, holder=holder, email=invitation.email,
                                    ticket_ref=ticket.ref)
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
        await notify_order_managers(session, ticket.order_id, "invitation_expired", now,
                                    email=invitation.email, ticket_ref=ticket.ref)



# --- completed tickets -----------------------------------------------------------------------


async def rename_holder(store: Store, telegram_id: int, ticket_id: int, name: str) -> str:
    """Correct the name on a completed ticket (the uniqueness rule applies again); a new name
    is a new holder, so the barcode changes. Returns the clean name."""
    holder = clean_name(name)
    now = utcnow()
    async with store.write() as session:
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        if not reading.personalisation_open(event, now):
            raise Refusal("name_change_closed")
        if ticket.state != TicketState.COMPLETED:
            raise Refusal("not_completed")
        if ticket.name_key == name_key(holder) and ticket.holder_name == holder:
            raise Refusal("same_name")
        barcode = await reissue_barcode(session, ticket, now)
        # The Telegram account holding it stays only if it is the one renaming it.
        keeper = telegram_id if ticket.holder_telegram_id == telegram_id else None
        await change_ticket(session, ticket, TicketState.COMPLETED, now, holder_name=holder,
                            name_key=name_key(holder), holder_telegram_id=keeper,
                            barcode=barcode)
        await audit(session, ActorKind.BUYER, telegram_id, "holder_renamed", order_id=order.id,
                    ticket_id=ticket.id, now=now, old=ticket.holder_name, new=holder)
    return holder


async def take_back(store: Store, telegram_id: int, ticket_id: int) -> None:
    """Take a completed ticket back: it returns to *to assign* with a new barcode."""
    now = utcnow()
    async with store.write() as session:
        ticket, event, order = await managed_ticket(session, telegram_id, ticket_id)
        if not reading.personalisation_open(event, now):
            raise Refusal("name_change_closed")
        if ticket.state != TicketState.COMPLETED:
            raise Refusal("not_completed")
        barcode = await reissue_barcode(session, ticket, now)
        await change_ticket(session, ticket, TicketState.COMPLETED, now,
                            state=TicketState.TO_ASSIGN, holder_name=None, name_key=None,
                            holder_email=None, email_key=None, holder_telegram_id=None,
                            barcode=barcode)
        await audit(session, ActorKind.BUYER, telegram_id, "taken_back", order_id=order.id,
                    ticket_id=ticket.id, now=now, old=ticket.holder_name)


async def choose_language(store: Store, telegram_id: int, language: str, *,
                          order_id: int | None = None) -> None:
    """Remember the language this Telegram user chose; it wins over their app's language.
    Chosen from an order's screen (``order_id``), only by someone who may manage that order:
    a forged button changes nothing."""
    now = utcnow()
    async with store.write() as session:
        if order_id is not None and not await reading.may_manage(session, telegram_id,
                                                                 order_id):
            raise Refusal("not_found")
        await upsert(session, TelegramUser,
                     {"telegram_id": telegram_id, "chosen_language": language,
                      "failed_starts": 0, "created_at": now},
                     index=["telegram_id"], update=["chosen_language"])
