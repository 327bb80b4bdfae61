"""A person's data: what the store holds about a Telegram user (``my_data``), forgetting them
(``forget_person``), and removing an event's personal data once its retention is over
(``shred_event``, ``shred_due_events``); plus dropping sent messages after a while
(``forget_old_messages``). What is kept, where and for how long: docs/privacy.md.

Erasing is *anonymising*, never deleting what the shop must keep: order numbers, prices,
counts, that a ticket existed and was used stay. Names and e-mails become ``ERASED`` (or an
address at ``.invalid``), Telegram ids become NULL, and history entries keep their action and
time with every text blanked and ``erased_at`` set.

The rule for a ticket in the forgotten person's name, for an event still to come and not yet
used: it returns to the buyer's *to assign*, with a new barcode (as ``take_back`` does), so the
buyer can give it to someone else. For an event already over, or a ticket already used, the
ticket stays as it is with its holder's name blanked.

Guarantees: ``forget_person`` is one transaction. ``shred_event`` works a chunk of tickets per
transaction; every step is idempotent (blanking twice blanks once), so a shred killed midway
is finished by the next run, and only the run whose conditional ``UPDATE events SET
shredded_at`` wins writes the audit entry: an event is shredded once.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, func, literal, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from locales import LANGUAGES
from storage import applying
from storage.db.store import Store, utcnow
from storage.models import (
    ActorKind,
    AuditEntry,
    Barcode,
    ChatState,
    ClaimGrant,
    Event,
    Invitation,
    Order,
    OrderAccess,
    OutboxMail,
    ReminderOptOut,
    ResaleListing,
    SentReminder,
    TelegramUser,
    Ticket,
    TicketState,
    UpdateInbox,
    WebAppAction,
    WebhookDelivery,
    WebhookMessage,
)
from storage.models.chats import ChatNotification
from storage.models.gate import BarcodeFeedEntry, GateScan
from storage.models.tickets import TelegramFile, TicketMessage
from storage.reads import search
from storage.services.barcodes import reissue_barcode
from storage.services.journal import audit
from storage.services.ticket_changes import change_ticket

_TICKETS, _ORDERS = Ticket.__table__, Order.__table__
_INVITATIONS, _AUDIT, _SCANS = Invitation.__table__, AuditEntry.__table__, GateScan.__table__
_BLANK_TICKET = (
    update(_TICKETS).where(_TICKETS.c.id == bindparam("ticket"))
    .values(holder_name=bindparam("holder"), name_key=bindparam("key"), holder_email=None,
            email_key=None, holder_telegram_id=None, search_key=bindparam("search"),
            version=_TICKETS.c.version + 1)
)
ERASED = "—"  # a name, once erased
ERASED_DOMAIN = "erased.invalid"  # an e-mail, once erased: reserved, never delivered (RFC 2606)
# Sent e-mails and chat news are kept this long, then deleted (their parameters hold names).
KEEP_SENT_MESSAGES = dt.timedelta(days=7)
SHRED_CHUNK = 500  # tickets (or orders) per transaction when an event is shredded; 999 SQL
# parameters at most on older SQLite builds


@dataclasses.dataclass(frozen=True)
class Erasure:
    """What an erasure changed, counted: for the audit entry and ``ticketbot shred``."""

    tickets_returned: int = 0  # back to the buyer's "to assign"
    tickets_blanked: int = 0
    orders: int = 0
    invitations: int = 0
    history_entries: int = 0
    messages: int = 0  # e-mails, chat news, webhook messages, ticket messages, cached files

    def __add__(self, other: Erasure) -> Erasure:
        return Erasure(*(a + b for a, b in zip(dataclasses.astuple(self),
                                                dataclasses.astuple(other), strict=True)))


def erased_email(row_id: int) -> str:
    return f"erased-{row_id}@{ERASED_DOMAIN}"


def erased_name_key(ticket_id: int) -> str:
    """A name key no real name has ("#" is never in a name): unique per ticket."""
    return f"#erased-{ticket_id}"


def blanked(value: Any) -> Any:
    """A history entry's details with every text blanked, numbers and flags kept."""
    if isinstance(value, str):
        return ""
    if isinstance(value, dict):
        return {key: blanked(item) for key, item in value.items()}
    if isinstance(value, list):
        return [blanked(item) for item in value]
    return value


# --- what the store holds about a person ----------------------------------------------------


async def my_data(store: Store, telegram_id: int) -> dict[str, Any]:
    """Everything the store holds about this Telegram user, as a JSON-ready document: their
    user record and choices, the orders they manage, the tickets in their name, invitations
    they sent or received, reminders, and the history entries about them. Tickets of their
    orders held by others are listed without their holder. Audited."""
    now = utcnow()
    async with store.write() as session:
        document = await _collect(session, telegram_id)
        await audit(session, ActorKind.BUYER, telegram_id, "personal_data_exported", now=now,
                    entries=len(document["history"]))
    return document


async def _collect(session: AsyncSession, telegram_id: int) -> dict[str, Any]:
    user = await session.get(TelegramUser, telegram_id)
    order_ids = await _managed_orders(session, telegram_id)
    held = list(await session.scalars(
        select(Ticket).where(Ticket.holder_telegram_id == telegram_id).order_by(Ticket.id)))
    held_ids = {ticket.id for ticket in held}
    orders = list(await session.scalars(
        select(Order).where(Order.id.in_(order_ids)).order_by(Order.id)))
    order_tickets = list(await session.scalars(
        select(Ticket).where(Ticket.order_id.in_(order_ids)).order_by(Ticket.id)))
    sent = list(await session.scalars(select(Invitation).where(
        Invitation.invited_by_telegram_id == telegram_id).order_by(Invitation.id)))
    received = list(await session.scalars(select(Invitation).where(
        Invitation.claimed_by_telegram_id == telegram_id).order_by(Invitation.id)))
    step = await session.get(ChatState, telegram_id)
    opted_out = await session.get(ReminderOptOut, telegram_id)
    reminders = list(await session.scalars(select(SentReminder).where(or_(
        and_(SentReminder.kind == "personalise", SentReminder.subject_id.in_(order_ids)),
        and_(SentReminder.kind == "invitation",
             SentReminder.subject_id.in_([i.id for i in sent + received])),
        and_(SentReminder.kind == "event_day", SentReminder.subject_id.in_(held_ids)),
    )).order_by(SentReminder.id)))
    history = list(await session.scalars(select(AuditEntry).where(or_(
        AuditEntry.actor_telegram_id == telegram_id, AuditEntry.ticket_id.in_(held_ids),
    )).order_by(AuditEntry.id)))
    return {
        "user": {
            "telegram_id": telegram_id,
            "chosen_language": user.chosen_language if user else None,
            "telegram_language": user.telegram_language if user else None,
            "first_seen": _when(user.created_at) if user else None,
            "reminders": "off" if opted_out is not None else "on",
            "waiting_for": step.step if step is not None else None,
        },
        "orders": [{
            "number": order.number, "buyer_name": order.buyer_name,
            "buyer_email": order.buyer_email, "language": order.language,
            "created_at": _when(order.created_at),
            "tickets": [_ticket(ticket, mine=ticket.id in held_ids)
                        for ticket in order_tickets if ticket.order_id == order.id],
        } for order in orders],
        "tickets": [_ticket(ticket, mine=True) for ticket in held],
        "invitations_sent": [_invitation(invitation) for invitation in sent],
        "invitations_received": [_invitation(invitation) for invitation in received],
        "reminders": [{"kind": r.kind, "occasion": r.occasion, "sent_at": _when(r.sent_at)}
                      for r in reminders],
        "history": [{"at": _when(entry.at), "action": entry.action, "details": entry.details}
                    for entry in history],
    }


def _ticket(ticket: Ticket, *, mine: bool) -> dict[str, Any]:
    shown = {"ref": ticket.ref, "event": ticket.event_id, "category": ticket.category,
             "price": str(ticket.price), "state": str(ticket.state),
             "used_at": _when(ticket.used_at)}
    if mine:
        shown.update(holder_name=ticket.holder_name, holder_email=ticket.holder_email,
                     barcode=ticket.barcode)
    return shown


def _invitation(invitation: Invitation) -> dict[str, Any]:
    return {"email": invitation.email, "inviter_name": invitation.inviter_name,
            "state": str(invitation.state), "created_at": _when(invitation.created_at),
            "expires_at": _when(invitation.expires_at)}


def _when(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


async def _managed_orders(session: AsyncSession, telegram_id: int) -> list[int]:
    return list(await session.scalars(
        select(OrderAccess.order_id).where(OrderAccess.telegram_id == telegram_id)))


# --- forgetting a person ------------------------------------------------------------------------


async def forget_person(store: Store, telegram_id: int) -> Erasure:
    """Anonymise this Telegram user everywhere, in one transaction (the module's docstring
    says what is kept and what becomes of their tickets). Audited without naming them."""
    now = utcnow()
    async with store.write() as session:
        erasure = await _forget(session, telegram_id, now)
        await audit(session, ActorKind.SYSTEM, None, "person_forgotten", now=now,
                    **dataclasses.asdict(erasure))
    return erasure


async def _forget(session: AsyncSession, telegram_id: int, now: dt.datetime) -> Erasure:
    order_ids = await _managed_orders(session, telegram_id)
    held = list(await session.scalars(
        select(Ticket).where(Ticket.holder_telegram_id == telegram_id)))
    emails = {ticket.holder_email for ticket in held if ticket.holder_email}
    emails |= set(await session.scalars(select(Order.buyer_email).where(
        Order.id.in_(order_ids))))
    emails |= set(await session.scalars(select(Invitation.email).where(
        Invitation.claimed_by_telegram_id == telegram_id)))
    names = {ticket.holder_name for ticket in held if ticket.holder_name}
    names |= set(await session.scalars(select(Order.buyer_name).where(Order.id.in_(order_ids))))
    messages = await _drop_messages_naming(session, names | emails)
    # The history first: the entries the erasure writes below name nobody and stay readable.
    history = await _blank_history(session, or_(
        AuditEntry.actor_telegram_id == telegram_id,
        AuditEntry.ticket_id.in_([ticket.id for ticket in held]),
        AuditEntry.order_id.in_(order_ids)), now)
    returned = blanked_tickets = 0
    for ticket in held:
        if await _returnable(session, ticket, now):
            await _return_to_buyer(session, ticket, now)
            returned += 1
        else:
            blanked_tickets += await _blank_tickets(session, [ticket.id])
    orders = await _blank_orders(session, order_ids)
    invitations = await _blank_invitations(session, or_(
        Invitation.claimed_by_telegram_id == telegram_id, Invitation.email.in_(emails)))
    await session.execute(update(Invitation).where(
        Invitation.invited_by_telegram_id == telegram_id).values(
        invited_by_telegram_id=None, inviter_name=ERASED))
    messages += await _drop_messages(session, emails, [ticket.id for ticket in held])
    messages += await _drop_chat(session, telegram_id)
    return Erasure(returned, blanked_tickets, orders, invitations, history, messages)


async def _drop_messages_naming(session: AsyncSession, texts: set[str]) -> int:
    """E-mails and chat news, sent or not, whose recipient or parameters hold one of these
    names or addresses (an invitation's e-mail names the buyer who sent it). Both tables keep
    a week of messages at most (``forget_old_messages``), so reading them through is cheap."""
    wanted = [text.casefold() for text in texts if text and text != ERASED]
    if not wanted:
        return 0
    dropped = 0
    for model in (OutboxMail, ChatNotification):
        rows = (await session.execute(select(model.id, model.params, *(
            [model.recipient] if model is OutboxMail else [])))).all()
        ids = [row[0] for row in rows
               if any(text in json.dumps([*row[1:]], ensure_ascii=False).casefold()
                      for text in wanted)]
        for start in range(0, len(ids), 500):
            dropped += (await session.execute(delete(model).where(
                model.id.in_(ids[start:start + 500])))).rowcount or 0
    return dropped + await _drop_webhooks_naming(session, wanted)


async def _drop_webhooks_naming(session: AsyncSession, wanted: list[str]) -> int:
    """Messages to the shop's webhooks whose body names the person (``ticket.assigned`` carries
    the holder's name; ``wanted`` is casefolded), delivered or not, with their deliveries: like
    an e-mail, a message not yet sent is not sent once its subject asked to be forgotten, and
    none is kept after. Finished ones are kept a week at most (``forget_old_messages``), so
    the table is short."""
    return await _drop_webhooks_where(
        session, lambda body: any(text in body.casefold() for text in wanted))


async def _drop_webhooks_about(session: AsyncSession, event_id: str) -> int:
    """Messages to the shop's webhooks about the event's tickets, sent or not, with their
    deliveries: its retention is over, and ``ticket.assigned`` names each holder."""

    def about(body: str) -> bool:
        data = json.loads(body).get("data") or {}
        return event_id in (data.get("event"), data.get("new_event"))

    return await _drop_webhooks_where(session, about)


async def _drop_webhooks_where(session: AsyncSession, matches: Callable[[str], bool]) -> int:
    rows = (await session.execute(select(WebhookMessage.id, WebhookMessage.body))).all()
    return await _delete_webhook_messages(
        session, [row_id for row_id, body in rows if matches(body)])


async def _delete_webhook_messages(session: AsyncSession, ids: Sequence[int]) -> int:
    for start in range(0, len(ids), 500):
        chunk = ids[start:start + 500]
        await session.execute(delete(WebhookDelivery).where(WebhookDelivery.message_id.in_(chunk)))
        await session.execute(delete(WebhookMessage).where(WebhookMessage.id.in_(chunk)))
    return len(ids)


async def _returnable(session: AsyncSession, ticket: Ticket, now: dt.datetime) -> bool:
    """A completed ticket, never scanned, of an event still to come."""
    if ticket.state != TicketState.COMPLETED or ticket.used_at is not None:
        return False
    event = await session.get(Event, ticket.event_id)
    return event is not None and event.starts_at > now


async def _return_to_buyer(session: AsyncSession, ticket: Ticket, now: dt.datetime) -> None:
    barcode = await reissue_barcode(session, ticket, now)
    await _blank_feed(session, [ticket.id])
    await change_ticket(session, ticket, TicketState.COMPLETED, now, state=TicketState.TO_ASSIGN,
                        holder_name=None, name_key=None, holder_email=None, email_key=None,
                        holder_telegram_id=None, barcode=barcode)
    await audit(session, ActorKind.SYSTEM, None, "returned_to_buyer", order_id=ticket.order_id,
                ticket_id=ticket.id, now=now, reason="holder_forgotten")


async def _drop_chat(session: AsyncSession, telegram_id: int) -> int:
    """Everything kept about the Telegram account itself: the user, the chat's step, its
    updates, its news, its accesses, its opt-out, its Mini App actions, its ticket messages.
    The update being handled now keeps its row (its done mark commits with this), blanked."""
    current = applying.current()
    keep = current.update_id if current is not None else None
    dropped = 0
    for statement in (
        delete(UpdateInbox).where(UpdateInbox.chat_id == telegram_id,
                                  UpdateInbox.update_id != (keep if keep is not None else -1)),
        delete(ChatNotification).where(ChatNotification.telegram_id == telegram_id),
        delete(TicketMessage).where(TicketMessage.chat_id == telegram_id),
        delete(ChatState).where(ChatState.chat_id == telegram_id),
        delete(OrderAccess).where(OrderAccess.telegram_id == telegram_id),
        delete(ClaimGrant).where(ClaimGrant.telegram_id == telegram_id),
        delete(ReminderOptOut).where(ReminderOptOut.telegram_id == telegram_id),
        delete(WebAppAction).where(WebAppAction.telegram_id == telegram_id),
        delete(TelegramUser).where(TelegramUser.telegram_id == telegram_id),
    ):
        dropped += (await session.execute(statement)).rowcount or 0
    if keep is not None:
        await session.execute(update(UpdateInbox).where(UpdateInbox.update_id == keep).values(
            chat_id=None, payload={"update_id": keep}))
    await session.execute(update(ResaleListing).where(
        ResaleListing.listed_by_telegram_id == telegram_id).values(listed_by_telegram_id=None))
    return dropped


# --- the blanking steps, shared by forgetting and shredding -------------------------------------


async def _blank_tickets(session: AsyncSession, ticket_ids: Sequence[int], *,
                         feed: bool = True) -> int:
    """Holder names and e-mails blanked, Telegram ids dropped: the ticket, its state and its
    scan stay. A name required by the ticket's state becomes ``ERASED``. ``feed`` False: the
    caller blanks the gate's feed itself (a whole event's at once)."""
    if not ticket_ids:
        return 0
    connection = await session.connection()
    rows = (await connection.execute(
        select(_TICKETS.c.id, _TICKETS.c.ref, _TICKETS.c.holder_name, _TICKETS.c.name_key)
        .where(_TICKETS.c.id.in_(ticket_ids),
               or_(_TICKETS.c.holder_email.is_not(None),
                   _TICKETS.c.holder_telegram_id.is_not(None),
                   and_(_TICKETS.c.holder_name.is_not(None),
                        _TICKETS.c.holder_name != ERASED))))).all()
    if rows:
        # One statement, many rows: an ORM update per row would also walk the session's
        # identity map each time (quadratic in a chunk).
        await connection.execute(_BLANK_TICKET, [{
            "ticket": ticket_id,
            "holder": ERASED if holder is not None else None,
            "key": erased_name_key(ticket_id) if key is not None else None,
            "search": search.search_key(ref),
        } for ticket_id, ref, holder, key in rows])
    if feed:
        await _blank_feed(session, ticket_ids)
    scans = (await connection.execute(select(_SCANS.c.id, _SCANS.c.answer).where(
        _SCANS.c.ticket_id.in_(ticket_ids)))).all()
    if scans:
        await connection.execute(
            update(_SCANS).where(_SCANS.c.id == bindparam("scan")).values(
                answer=bindparam("answer")),
            [{"scan": scan_id, "answer": blanked(answer)} for scan_id, answer in scans])
    return len(rows)


async def _blank_feed(session: AsyncSession, ticket_ids: Sequence[int]) -> None:
    """The gate's feed of barcodes carries the holder's name, voided barcodes' too."""
    await session.execute(update(BarcodeFeedEntry).where(
        BarcodeFeedEntry.ticket_id.in_(ticket_ids), BarcodeFeedEntry.holder_name.is_not(None),
        BarcodeFeedEntry.holder_name != ERASED).values(holder_name=ERASED)
        .execution_options(synchronize_session=False))


async def _blank_orders(session: AsyncSession, order_ids: Sequence[int]) -> int:
    """The buyer's name and e-mail blanked; the number, language and tickets stay."""
    connection = await session.connection()
    blanked_count = 0
    for start in range(0, len(order_ids), 500):
        rows = (await connection.execute(select(_ORDERS.c.id, _ORDERS.c.number).where(
            _ORDERS.c.id.in_(order_ids[start:start + 500]),
            _ORDERS.c.buyer_name != ERASED))).all()
        if rows:
            await connection.execute(
                update(_ORDERS).where(_ORDERS.c.id == bindparam("order")).values(
                    buyer_name=ERASED, buyer_email=bindparam("email"),
                    search_key=bindparam("search")),
                [{"order": order_id, "email": erased_email(order_id),
                  "search": search.search_key(number)} for order_id, number in rows])
        blanked_count += len(rows)
    return blanked_count


async def _blank_invitations(session: AsyncSession, which: Any) -> int:
    connection = await session.connection()
    ids = list((await connection.execute(select(Invitation.id).where(
        which, Invitation.email.not_like(f"%@{ERASED_DOMAIN}")))).scalars())
    if ids:
        await connection.execute(
            update(_INVITATIONS).where(_INVITATIONS.c.id == bindparam("invitation")).values(
                email=bindparam("email"), inviter_name=ERASED, claimed_by_telegram_id=None,
                invited_by_telegram_id=None),
            [{"invitation": invitation_id, "email": erased_email(invitation_id)}
             for invitation_id in ids])
        await connection.execute(delete(ClaimGrant.__table__).where(
            ClaimGrant.__table__.c.invitation_id.in_(ids)))
    return len(ids)


async def _blank_history(session: AsyncSession, which: Any, now: dt.datetime) -> int:
    connection = await session.connection()
    entries = (await connection.execute(select(_AUDIT.c.id, _AUDIT.c.details).where(
        which, _AUDIT.c.erased_at.is_(None)))).all()
    if entries:
        await connection.execute(
            update(_AUDIT).where(_AUDIT.c.id == bindparam("entry")).values(
                details=bindparam("details"), actor_telegram_id=None, erased_at=now),
            [{"entry": entry_id, "details": blanked(details)} for entry_id, details in entries])
    return len(entries)


async def _drop_messages(session: AsyncSession, emails: Iterable[str],
                         ticket_ids: Sequence[int]) -> int:
    """E-mails to these addresses, ticket messages and Telegram's cached files of these
    tickets (a PDF or QR picture prints the holder's name)."""
    dropped = 0
    addresses = sorted(emails)
    if addresses:
        dropped += (await session.execute(delete(OutboxMail).where(
            func.lower(OutboxMail.recipient).in_([a.lower() for a in addresses])))).rowcount or 0
    if ticket_ids:
        dropped += (await session.execute(delete(TicketMessage).where(
            TicketMessage.ticket_id.in_(ticket_ids)))).rowcount or 0
        codes = list(await session.scalars(select(Barcode.code).where(
            Barcode.ticket_id.in_(ticket_ids))))
        keys = [f"qr:{code}" for code in codes] + [
            f"{kind}:{code}:{language}" for code in codes for kind in ("pdf", "ics")
            for language in LANGUAGES]
        for start in range(0, len(keys), 500):
            dropped += (await session.execute(delete(TelegramFile).where(
                TelegramFile.key.in_(keys[start:start + 500])))).rowcount or 0
    return dropped


# --- retention: an event's personal data, once it is over ---------------------------------------


@dataclasses.dataclass(frozen=True)
class ShredPlan:
    """What shredding an event removes (``ticketbot shred --dry-run``)."""

    event_id: str
    due_at: dt.datetime
    shredded_at: dt.datetime | None
    named_tickets: int
    orders: int
    invitations: int


def retention_end(event: Event) -> dt.datetime:
    """When the event's personal data are due for removal."""
    return event.starts_at + dt.timedelta(days=event.retention_days)


async def shred_plan(store: Store, event_id: str) -> ShredPlan | None:
    """What ``shred_event`` would remove; None if there is no such event."""
    async with store.read() as session:
        event = await session.get(Event, event_id)
        if event is None:
            return None
        named = await session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.event_id == event_id,
            or_(Ticket.holder_name.is_not(None), Ticket.holder_email.is_not(None),
                Ticket.holder_telegram_id.is_not(None))).where(
            or_(Ticket.holder_name.is_(None), Ticket.holder_name != ERASED)))
        orders = await session.scalar(select(func.count()).select_from(Order).where(
            Order.id.in_(_orders_only_of(event_id)), Order.buyer_name != ERASED))
        invitations = await session.scalar(select(func.count()).select_from(Invitation).join(
            Ticket, Ticket.id == Invitation.ticket_id).where(
            Ticket.event_id == event_id, Invitation.email.not_like(f"%@{ERASED_DOMAIN}")))
    return ShredPlan(event_id, retention_end(event), event.shredded_at, named or 0,
                     orders or 0, invitations or 0)


def _orders_only_of(event_id: str) -> Any:
    """Orders whose every ticket is of this event or of an event already shredded."""
    other = (select(literal(1)).select_from(Ticket).join(Event, Event.id == Ticket.event_id)
             .where(Ticket.order_id == Order.id, Event.id != event_id,
                    Event.shredded_at.is_(None)))
    return (select(Order.id).join(Ticket, Ticket.order_id == Order.id)
            .where(Ticket.event_id == event_id, ~other.exists()).distinct())


async def shred_event(store: Store, event_id: str, *, actor: str = "retention") -> Erasure | None:
    """Remove the personal data of the event's tickets, of its orders (those with no ticket of
    an event not yet shredded), of their invitations, e-mails and history, a chunk of tickets
    per transaction; then mark the event shredded. Returns what was removed, or None if the
    event was shredded already (by this run's rival, or before)."""
    total = Erasure()
    after = 0
    while True:
        async with store.write(idempotent=True) as session:
            ids = list(await session.scalars(select(Ticket.id).where(
                Ticket.event_id == event_id, Ticket.id > after).order_by(Ticket.id)
                .limit(SHRED_CHUNK)))
            if not ids:
                break
            total += await _shred_tickets(session, ids, utcnow())
            after = ids[-1]
    async with store.read() as session:
        order_ids = list(await session.scalars(_orders_only_of(event_id)))
    for start in range(0, len(order_ids), SHRED_CHUNK):
        async with store.write(idempotent=True) as session:
            total += await _shred_orders(session, order_ids[start:start + SHRED_CHUNK], utcnow())
    now = utcnow()
    async with store.write(idempotent=True) as session:
        await session.execute(update(BarcodeFeedEntry).where(
            BarcodeFeedEntry.event_id == event_id, BarcodeFeedEntry.holder_name.is_not(None),
            BarcodeFeedEntry.holder_name != ERASED).values(holder_name=ERASED)
            .execution_options(synchronize_session=False))
        won = await session.execute(update(Event).where(
            Event.id == event_id, Event.shredded_at.is_(None)).values(shredded_at=now)
            .execution_options(synchronize_session=False))
        if won.rowcount != 1:
            return None
        total += Erasure(messages=await _drop_webhooks_about(session, event_id))
        await audit(session, ActorKind.SYSTEM, None, "event_shredded", now=now, event=event_id,
                    source=actor, **dataclasses.asdict(total))
    return total


async def _shred_orders(session: AsyncSession, order_ids: Sequence[int],
                        now: dt.datetime) -> Erasure:
    orders = await _blank_orders(session, order_ids)
    history = await _blank_history(session, AuditEntry.order_id.in_(order_ids), now)
    await session.execute(delete(OrderAccess).where(OrderAccess.order_id.in_(order_ids)))
    return Erasure(orders=orders, history_entries=history)


async def _shred_tickets(session: AsyncSession, ids: Sequence[int], now: dt.datetime) -> Erasure:
    emails = set(await session.scalars(select(Ticket.holder_email).where(
        Ticket.id.in_(ids), Ticket.holder_email.is_not(None))))
    emails |= set(await session.scalars(select(Invitation.email).where(
        Invitation.ticket_id.in_(ids))))
    tickets = await _blank_tickets(session, ids, feed=False)
    invitations = await _blank_invitations(session, Invitation.ticket_id.in_(ids))
    history = await _blank_history(session, AuditEntry.ticket_id.in_(ids), now)
    messages = await _drop_messages(session, emails, ids)
    return Erasure(tickets_blanked=tickets, invitations=invitations, history_entries=history,
                   messages=messages)


async def shred_due_events(store: Store, now: dt.datetime | None = None) -> list[str]:
    """Shred every event whose retention is over and that is not shredded yet; returns their
    ids. Run by the background worker; an event not yet due is left alone."""
    now = now or utcnow()
    async with store.read() as session:
        events = list(await session.scalars(select(Event).where(
            Event.shredded_at.is_(None), Event.starts_at <= now)))
    shredded = []
    for event in sorted(events, key=retention_end):
        if retention_end(event) <= now and await shred_event(store, event.id) is not None:
            shredded.append(event.id)
    return shredded


# --- messages already sent ------------------------------------------------------------------------


async def forget_old_messages(store: Store, now: dt.datetime | None = None) -> int:
    """Delete e-mails and chat news sent (or given up) longer ago than ``KEEP_SENT_MESSAGES``,
    and webhook messages once every delivery of theirs finished (delivered, failed or
    stopped) that long ago: their parameters and bodies hold names and addresses. Returns how
    many."""
    before = (now or utcnow()) - KEEP_SENT_MESSAGES
    async with store.write(idempotent=True) as session:
        mails = await session.execute(delete(OutboxMail).where(OutboxMail.sent_at < before))
        news = await session.execute(delete(ChatNotification).where(
            ChatNotification.sent_at < before))
        webhooks = await _delete_webhook_messages(session, sorted(set(await session.scalars(
            _WEBHOOK_MESSAGES_DONE, {"before": before}))))
    return (mails.rowcount or 0) + (news.rowcount or 0) + webhooks


_DONE, _OPEN = WebhookDelivery.__table__.alias("done"), WebhookDelivery.__table__.alias("open")
# Messages with a delivery finished before ``before`` and none unfinished or finished since
# (once per such delivery: DISTINCT would have SQLite read the whole table in message order).
_WEBHOOK_MESSAGES_DONE = (
    select(_DONE.c.message_id)
    .where(_DONE.c.finished_at < bindparam("before"),
           ~exists().where(_OPEN.c.message_id == _DONE.c.message_id,
                           or_(_OPEN.c.finished_at.is_(None),
                               _OPEN.c.finished_at >= bindparam("before"))))
)
