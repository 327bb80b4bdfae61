"""The ticket in hand, on the store's side: who may see which ticket, what was sent where, and
the outbox of barcode changes that the background worker turns into chat messages and e-mails.

What is promised, and where the promise ends:

- **A voided barcode is never forgotten.** ``barcode_voided`` writes a ``ticket_changes`` row in
  the very transaction that voids the barcode (every holder change, resale and exchange goes
  through ``services.void_barcode``), so a crash or an outage of Telegram only delays it.
- **Every ticket message that showed the old barcode is voided**, once per message: each message
  is recorded (``record_message``) with the barcode it shows, and marked when voided. A message
  recorded while its barcode is being voided is caught by either side: the recording locks the
  barcode's row and reads whether it is void, the voiding updates that row first.
- **The holder gets the new ticket once per barcode** in chat (a change is done only after the
  message is recorded; a retry finds it recorded and sends nothing), and **one e-mail per
  barcode** (its ``Message-ID`` is made from the barcode, a unique column). A crash between
  Telegram's answer and the record may send the picture twice; never zero times.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from locales import words_in
from storage import entry_codes
from storage.db.prepared import execute_in_session
from storage.db.store import Store, utcnow
from storage.db.upsert import insert_ignore, upsert
from storage.errors import Refusal
from storage.leased_queue import TICKET_CHANGES, Lease
from storage.models import (
    Barcode,
    EntryCode,
    EntryKey,
    Event,
    Order,
    OrderAccess,
    OutboxMail,
    TelegramUser,
    Ticket,
    TicketState,
    WordsValue,
)
from storage.models.tickets import TelegramFile, TicketChange, TicketMessage

CHANGE_LEASE = dt.timedelta(minutes=2)
CHANGE_BATCH = 20


@dataclass(frozen=True)
class TicketCard:
    """Everything a ticket shows (in chat, PDF, calendar, e-mail), read in one statement.
    ``languages`` are the holder's chosen and app language and the order's, best first. The
    event's words (name, venue, category) are as the import gave them, maybe per language:
    ``in_language`` picks them before anything is drawn or cached."""

    ticket_id: int
    ref: str
    barcode: str
    holder_name: str
    holder_email: str | None
    holder_telegram_id: int | None
    category: WordsValue
    price: Decimal
    currency: str
    order_id: int
    order_number: str
    event_id: str
    event_name: WordsValue
    starts_at: dt.datetime
    timezone: str
    venue_name: WordsValue
    venue_city: str
    languages: tuple[str | None, ...]
    # A rotating event's ticket carries no code: it is live in the Mini App only.
    rotating: bool = False
    reveal_hours_before: int | None = None  # rotating: no live code before this
    # A static event's ticket: its signed code (storage/entry_codes.py), what its QR holds;
    # None if the event has no key yet (then the QR holds the bare barcode).
    signed_code: str | None = None

    @property
    def qr_text(self) -> str:
        """What the ticket's QR code holds: its signed code, else its barcode."""
        return self.signed_code or self.barcode

    @property
    def file_key(self) -> str:
        """What a stored picture or PDF of the ticket depends on: the barcode and the key that
        signed its code (a rotated key draws a new code)."""
        key_id = self.signed_code.split(".")[1] if self.signed_code else "-"
        return f"{self.barcode}:{key_id}"

    @property
    def reveal_at(self) -> dt.datetime | None:
        """When a rotating ticket's live code first shows (None: always)."""
        if not self.rotating or self.reveal_hours_before is None:
            return None
        return self.starts_at - dt.timedelta(hours=self.reveal_hours_before)

    def in_language(self, language: str) -> TicketCard:
        """The card with its event's words in ``language`` (plain, hashable strings)."""
        return dataclasses.replace(
            self, event_name=words_in(self.event_name, language),
            venue_name=words_in(self.venue_name, language),
            category=words_in(self.category, language))


@dataclass(frozen=True)
class SentMessage:
    row_id: int
    chat_id: int
    message_id: int
    ticket_id: int
    language: str


@dataclass(frozen=True)
class ChangeWork:
    """What one barcode change asks for: messages to void, and the ticket to deliver (if it
    now has a holder with a Telegram account who has not got this barcode yet)."""

    lease: Lease
    to_void: tuple[SentMessage, ...]
    deliver: TicketCard | None
    delivered_already: bool


_users = TelegramUser.__table__
_CARD = (
    select(Ticket.id, Ticket.ref, Ticket.barcode, Ticket.holder_name, Ticket.holder_email,
           Ticket.holder_telegram_id, Ticket.category, Ticket.price, Event.currency, Order.id,
           Order.number, Event.id, Event.name, Event.starts_at, Event.timezone,
           Event.venue_name, Event.venue_city,
           select(_users.c.chosen_language).where(_users.c.telegram_id == Ticket.holder_telegram_id)
           .scalar_subquery(),
           select(_users.c.telegram_language)
           .where(_users.c.telegram_id == Ticket.holder_telegram_id).scalar_subquery(),
           Order.language, Event.entry_code, Event.entry_reveal_hours_before,
           EntryKey.key_id, EntryKey.private_key)
    .join(Event, Event.id == Ticket.event_id)
    .join(Order, Order.id == Ticket.order_id)
    .join(Barcode, and_(Barcode.code == Ticket.barcode, Barcode.voided_at.is_(None)))
    # The event's live key (at most one: a partial unique index), to sign a static code.
    .outerjoin(EntryKey, and_(EntryKey.event_id == Event.id, EntryKey.retired_at.is_(None)))
    .where(Ticket.state == TicketState.COMPLETED)
)


def _card(row) -> TicketCard:
    (ticket_id, ref, barcode, holder_name, holder_email, holder_telegram_id, category, price,
     currency, order_id, order_number, event_id, event_name, starts_at, timezone, venue_name,
     venue_city, chosen, app, order_language, entry_code, reveal_hours_before, key_id,
     private_key) = row
    rotating = entry_code == EntryCode.ROTATING
    signed = (entry_codes.static_code(key_id, private_key, event_id, ref, barcode)
              if key_id is not None and not rotating else None)
    return TicketCard(
        ticket_id=ticket_id, ref=ref, barcode=barcode, holder_name=holder_name or "",
        holder_email=holder_email, holder_telegram_id=holder_telegram_id, category=category,
        price=price, currency=currency, order_id=order_id, order_number=order_number,
        event_id=event_id, event_name=event_name, starts_at=starts_at, timezone=timezone,
        venue_name=venue_name, venue_city=venue_city, languages=(chosen, app, order_language),
        rotating=rotating, reveal_hours_before=reveal_hours_before, signed_code=signed)


# --- the hook: written with the change --------------------------------------------------------


# Built once: it runs in every claim, acceptance and name change (see storage/services/journal.py).
_INSERT_CHANGE = insert(TicketChange.__table__)


async def barcode_voided(session: AsyncSession, code: str, now: dt.datetime) -> None:
    """Queue the consequences of voiding ``code`` in the transaction that voids it."""
    await execute_in_session(session, _INSERT_CHANGE, {
        "old_barcode": code, "created_at": now, "next_attempt_at": now, "attempts": 0,
        "done_at": None,
    })


# --- the worker's side ------------------------------------------------------------------------


async def claim_due_changes(store: Store, now: dt.datetime | None = None) -> list[Lease]:
    """Take up to a batch of due changes for one lease (several workers never take the same
    change at the same time); oldest first."""
    return await TICKET_CHANGES.claim(store, limit=CHANGE_BATCH, lease=CHANGE_LEASE, now=now)


async def change_work(store: Store, lease: Lease) -> ChangeWork | None:
    """What the leased change still asks for, as the store stands now."""
    async with store.read() as session:
        change = await session.get(TicketChange, lease.id)
        if change is None or change.done_at is not None:
            return None
        rows = (await session.execute(
            select(TicketMessage.id, TicketMessage.chat_id, TicketMessage.message_id,
                   TicketMessage.ticket_id, TicketMessage.language)
            .where(TicketMessage.barcode == change.old_barcode,
                   TicketMessage.voided_at.is_(None))
            .order_by(TicketMessage.id)
        )).all()
        ticket_id = await session.scalar(
            select(Barcode.ticket_id).where(Barcode.code == change.old_barcode))
        card = None
        if ticket_id is not None:
            row = (await session.execute(_CARD.where(Ticket.id == ticket_id))).first()
            card = _card(row) if row is not None else None
        delivered = False
        if card is not None and card.holder_telegram_id is not None:
            delivered = await session.scalar(
                select(TicketMessage.id).where(TicketMessage.chat_id == card.holder_telegram_id,
                                               TicketMessage.barcode == card.barcode).limit(1)
            ) is not None
    return ChangeWork(lease, tuple(SentMessage(*row) for row in rows),
                      card, delivered)


async def finish_change(store: Store, lease: Lease, *, mail: TicketCard | None,
                        recipient: str | None, language: str, now: dt.datetime | None = None,
                        ) -> None:
    """Mark the change done and, in the same transaction, queue the "your ticket" e-mail of
    ``mail`` (once per barcode: its Message-ID is made from it)."""
    now = now or utcnow()
    async with store.write() as session:
        await TICKET_CHANGES.finish_in(session, [lease.id], now=now)
        if mail is not None and recipient:
            await insert_ignore(session, OutboxMail, {
                "message_id": f"<ticket{mail.ticket_id}.{mail.barcode}@ticketbot.local>",
                "recipient": recipient, "language": language, "kind": "ticket",
                "params": {"ticket_id": mail.ticket_id, "barcode": mail.barcode},
                "created_at": now, "next_attempt_at": now, "attempts": 0, "sent_at": None,
                "last_error": None,
            })


async def retry_change(store: Store, lease: Lease, delay: dt.timedelta) -> None:
    """Try the change again later; after a few tries it is given up (and logged by the
    caller): the holder can still show the ticket from /start."""
    await TICKET_CHANGES.retry_later(store, lease, delay)


async def mark_voided(store: Store, row_id: int) -> None:
    async with store.write(idempotent=True) as session:
        await session.execute(
            update(TicketMessage).where(TicketMessage.id == row_id,
                                        TicketMessage.voided_at.is_(None))
            .values(voided_at=utcnow()).execution_options(synchronize_session=False))


_LOCK_BARCODE = (select(Barcode.voided_at).where(Barcode.code == bindparam("code"))
                 .with_for_update())


async def record_message(store: Store, *, chat_id: int, message_id: int, ticket_id: int,
                         barcode: str, language: str) -> SentMessage | None:
    """Remember a ticket message that shows ``barcode``. Returns it if that barcode was
    voided meanwhile (the caller voids the message at once), else None.

    The barcode's row is locked first (PostgreSQL; SQLite has one writer at a time), so either
    the voiding transaction sees this message, or this one sees the barcode void."""
    now = utcnow()
    async with store.write(idempotent=True) as session:
        voided_at = (await session.execute(_LOCK_BARCODE, {"code": barcode})).scalar_one_or_none()
        row_id = (await session.execute(
            insert(TicketMessage.__table__).returning(TicketMessage.id), {
                "chat_id": chat_id, "message_id": message_id, "ticket_id": ticket_id,
                "barcode": barcode, "language": language, "sent_at": now, "voided_at": None,
            })).scalar_one()
    if voided_at is None:
        return None
    return SentMessage(row_id, chat_id, message_id, ticket_id, language)


# --- what a holder may see --------------------------------------------------------------------


async def held_card(store: Store, telegram_id: int, ticket_id: int) -> TicketCard:
    """The ticket if this Telegram user holds it now (completed, in their name), else the
    refusal a forged or stale button gets."""
    async with store.read() as session:
        row = (await session.execute(
            _CARD.where(Ticket.id == ticket_id, Ticket.holder_telegram_id == telegram_id)
        )).first()
    if row is None:
        raise Refusal("ticket_not_held")
    return _card(row)


async def held_cards_of_order(store: Store, telegram_id: int, order_id: int) -> list[TicketCard]:
    """The tickets of an order this user manages that are in their own hands (for the order's
    PDF); refuses an order they may not manage or where they hold nothing."""
    async with store.read() as session:
        rows = (await session.execute(
            _CARD.join(OrderAccess, and_(OrderAccess.order_id == Order.id,
                                         OrderAccess.telegram_id == telegram_id))
            .where(Order.id == order_id, Ticket.holder_telegram_id == telegram_id)
            .order_by(Event.starts_at, Ticket.id)
        )).all()
    if not rows:
        raise Refusal("ticket_not_held")
    return [_card(row) for row in rows]


async def card_for_mail(session: AsyncSession, ticket_id: int, barcode: str) -> TicketCard | None:
    """The ticket as the e-mail of ``barcode`` shows it; None once that barcode is no longer
    the ticket's current one (the mail would carry a void code)."""
    row = (await session.execute(_CARD.where(Ticket.id == ticket_id,
                                             Ticket.barcode == barcode))).first()
    return _card(row) if row is not None else None


async def card_of_message(store: Store, chat_id: int, message_id: int) -> TicketCard | None:
    """The ticket a recorded (and still valid) ticket message shows, e.g. for the demo."""
    async with store.read() as session:
        row = (await session.execute(
            _CARD.join(TicketMessage, and_(TicketMessage.ticket_id == Ticket.id,
                                           TicketMessage.barcode == Ticket.barcode))
            .where(TicketMessage.chat_id == chat_id, TicketMessage.message_id == message_id)
        )).first()
    return _card(row) if row is not None else None


# --- Telegram's file ids ----------------------------------------------------------------------


async def file_id(store: Store, key: str) -> str | None:
    rows = await store.read_rows(_FILE_ID, {"key": key})
    return rows[0].file_id if rows else None


_FILE_ID = select(TelegramFile.file_id).where(TelegramFile.key == bindparam("key"))


async def remember_file_id(store: Store, key: str, value: str) -> None:
    """Keep the ``file_id`` Telegram gave an upload; a newer one replaces an older one."""
    async with store.write(idempotent=True) as session:
        await upsert(session, TelegramFile, {"key": key, "file_id": value, "created_at": utcnow()},
                     index=["key"], update=["file_id", "created_at"])


async def ticket_ref(store: Store, ticket_id: int) -> str:
    async with store.read_connection() as connection:
        return (await connection.execute(
            select(Ticket.ref).where(Ticket.id == ticket_id))).scalar_one()


async def pending_changes(store: Store) -> int:
    """How many barcode changes are not carried out yet (due, leased or waiting to retry)."""
    return await TICKET_CHANGES.unfinished(store)


async def forget_done_changes(store: Store, *, older_than: dt.timedelta = dt.timedelta(days=2),
                              ) -> int:
    """Delete changes carried out long ago (their messages keep their own record)."""
    return await TICKET_CHANGES.forget_finished(store, older_than=older_than)
