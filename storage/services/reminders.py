"""Reminders, on the store's side: which are due, and queuing each exactly once.

What is promised, and where the promise ends:

- **Exactly once.** A reminder is a row of ``sent_reminders`` under a unique key (kind,
  subject id, occasion), inserted with ``ON CONFLICT DO NOTHING … RETURNING`` in the very
  transaction that queues its chat messages (``chat_notifications``) and e-mails
  (``outbox_mails``); only the rows this transaction inserted get anything queued. Two workers
  (two processes, or one after a restart) that decide the same reminder at once get the key
  once between them; the outboxes then send each message once (see ``bot/background.py``).
- **Only when still needed.** What is due is read in the transaction that queues it: an order
  with nothing left to assign, an invitation no longer pending, a ticket sold or used gets
  nothing. A reminder queued just before the ticket changes may still go out.
- **Never at night.** While the event's quiet hours last (21:00–09:00 in its time zone by
  default), none of its reminders is queued at all; they are queued once the quiet hours end,
  if still needed then. If the worker was away for several occasions (7 days and 1 day), only
  the most urgent one is sent.
- **Opt-out.** A Telegram user who turned reminders off gets no chat reminder; an e-mail to a
  buyer who never opened the bot, or to an invited friend, still goes out.

Kinds: ``personalise`` (subject: an order; occasion ``d<days>:<event>``), ``invitation``
(an invitation; ``expiry``), ``event_day`` (a ticket; the event's local date).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.db.store import Store, utcnow
from storage.models import (
    ChatNotification,
    Event,
    Invitation,
    InvitationState,
    Order,
    OrderAccess,
    OutboxMail,
    Ticket,
    TicketState,
)
from storage.models.reminders import ReminderOptOut, SentReminder

PERSONALISE = "personalise"
INVITATION = "invitation"
EVENT_DAY = "event_day"
BATCH = 500  # subjects decided per transaction


@dataclass(frozen=True)
class Schedule:
    """An event's reminder schedule: the import's ``reminders`` block, or the defaults."""

    personalisation_days: tuple[int, ...] = (7, 1)
    invitation_days: int = 2
    event_day: bool = True
    quiet_from: dt.time = dt.time(21, 0)
    quiet_until: dt.time = dt.time(9, 0)

    @classmethod
    def of(cls, block: dict[str, Any] | None) -> Schedule:
        if not block:
            return cls()
        quiet = block.get("quiet_hours", ["21:00", "09:00"])
        return cls(tuple(sorted(block.get("personalisation_days", [7, 1]))),
                   block.get("invitation_days", 2), block.get("event_day", True),
                   dt.time.fromisoformat(quiet[0]), dt.time.fromisoformat(quiet[1]))

    def quiet(self, local: dt.datetime) -> bool:
        """Whether ``local`` (the event's wall-clock time) lies in the quiet hours."""
        at = local.time()
        if self.quiet_from == self.quiet_until:
            return False
        if self.quiet_from < self.quiet_until:
            return self.quiet_from <= at < self.quiet_until
        return at >= self.quiet_from or at < self.quiet_until  # across midnight

    def personalisation_occasion(self, deadline: dt.datetime, now: dt.datetime) -> int | None:
        """The most urgent number of days before ``deadline`` already reached, if any."""
        if now >= deadline:
            return None
        reached = [days for days in self.personalisation_days
                   if now >= deadline - dt.timedelta(days=days)]
        return min(reached) if reached else None


async def queue_due_reminders(store: Store, now: dt.datetime | None = None) -> int:
    """Queue every reminder due at ``now`` that was not queued before; returns how many
    reminders (not messages) were queued. Run by the background worker each round."""
    now = now or utcnow()
    async with store.read() as session:
        events = (await session.execute(
            select(Event.id, Event.name, Event.timezone, Event.starts_at, Event.reminders,
                   Event.personalisation_enabled, Event.personalisation_deadline)
            .where(Event.starts_at > now - dt.timedelta(days=1))
        )).all()
    queued = 0
    for event in events:
        schedule = Schedule.of(event.reminders)
        local = now.astimezone(ZoneInfo(event.timezone))
        if schedule.quiet(local):
            continue
        if event.personalisation_enabled and event.personalisation_deadline is not None:
            days = schedule.personalisation_occasion(event.personalisation_deadline, now)
            if days is not None:
                queued += await _in_batches(store, _personalise, event, f"d{days}:{event.id}",
                                            now)
        if schedule.invitation_days > 0:
            queued += await _in_batches(store, _invitations, event, "expiry", now,
                                        within=dt.timedelta(days=schedule.invitation_days))
        starts_local = event.starts_at.astimezone(ZoneInfo(event.timezone))
        if schedule.event_day and local.date() == starts_local.date():
            queued += await _in_batches(store, _event_day, event,
                                        starts_local.date().isoformat(), now)
    return queued


async def _in_batches(store: Store, step, event, occasion: str, now: dt.datetime,
                      **options: Any) -> int:
    """Run ``step`` a batch per write transaction until it finds nothing more. A read
    transaction looks first: most minutes nothing is due, and on SQLite a write transaction
    would hold the store's one write lock while the tickets are read."""
    async with store.read() as session:
        found, _, _ = await step(session, event, occasion, now, probe=True, **options)
    if not found:
        return 0
    total = after = 0
    while True:  # by subject id, so that each batch reads on from where the last stopped
        async with store.write() as session:
            decided, queued, after = await step(session, event, occasion, now, after=after,
                                                **options)
        total += queued
        if decided < BATCH:
            return total


async def _claim(session: AsyncSession, kind: str, occasion: str, subjects: list[int],
                 now: dt.datetime) -> set[int]:
    """Insert the reminders' keys; the subjects whose key this transaction got."""
    if not subjects:
        return set()
    dialect = session.bind.dialect.name
    insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
    result = await session.execute(
        insert(SentReminder)
        .values([{"kind": kind, "subject_id": subject, "occasion": occasion, "sent_at": now}
                 for subject in subjects])
        .on_conflict_do_nothing(index_elements=["kind", "subject_id", "occasion"])
        .returning(SentReminder.subject_id))
    return set(result.scalars())


def _last(rows: list) -> int:
    return rows[-1][0] if rows else 0


def _not_sent(kind: str, occasion: str, subject) -> Any:
    return ~exists().where(SentReminder.kind == kind, SentReminder.occasion == occasion,
                           SentReminder.subject_id == subject)


def _opted_in(telegram_id) -> Any:
    return ~exists().where(ReminderOptOut.telegram_id == telegram_id)


def _notification(telegram_id: int, kind: str, params: dict[str, Any],
                  now: dt.datetime) -> ChatNotification:
    # Due at once by the senders' clock (the real one); ``now`` only decided it was time.
    sending = utcnow()
    return ChatNotification(telegram_id=telegram_id, kind=kind, params=params,
                            created_at=sending, next_attempt_at=sending)


def _mail(kind: str, subject: int, occasion: str, recipient: str, language: str,
          params: dict[str, Any], now: dt.datetime) -> OutboxMail:
    # The key makes the Message-ID: a reminder is recognisably one mail, whoever retries it.
    return OutboxMail(message_id=f"<reminder.{kind}.{subject}.{occasion}@ticketbot>",
                      recipient=recipient, language=language, kind=f"reminder_{kind}",
                      params=params, created_at=utcnow(), next_attempt_at=utcnow())


async def _personalise(session: AsyncSession, event, occasion: str, now: dt.datetime, *,
                       probe: bool = False, after: int = 0) -> tuple[int, int, int]:
    """Orders with tickets of this event still to assign: their managers in chat, or the
    buyer by e-mail when nobody ever opened the order in the bot."""
    rows = (await session.execute(
        select(Ticket.order_id, func.count())
        .where(Ticket.event_id == event.id, Ticket.state == TicketState.TO_ASSIGN,
               Ticket.order_id > after, _not_sent(PERSONALISE, occasion, Ticket.order_id))
        .group_by(Ticket.order_id).order_by(Ticket.order_id).limit(BATCH)
    )).all()
    if probe:
        return len(rows), 0, 0
    counts = dict(rows)
    mine = await _claim(session, PERSONALISE, occasion, list(counts), now)
    if not mine:
        return len(rows), 0, _last(rows)
    managers = (await session.execute(
        select(OrderAccess.order_id, OrderAccess.telegram_id)
        .where(OrderAccess.order_id.in_(mine), _opted_in(OrderAccess.telegram_id))
    )).all()
    opened = set((await session.scalars(
        select(OrderAccess.order_id).where(OrderAccess.order_id.in_(mine)))).all())
    deadline = event.personalisation_deadline.isoformat()
    for order_id, telegram_id in managers:
        session.add(_notification(telegram_id, "reminder_personalise", {
            "order_id": order_id, "event": event.name, "count": counts[order_id],
            "deadline": deadline, "timezone": event.timezone}, now))
    never = mine - opened
    if never:
        buyers = (await session.execute(
            select(Order.id, Order.buyer_email, Order.language).where(Order.id.in_(never))
        )).all()
        for order_id, email, language in buyers:
            session.add(_mail(PERSONALISE, order_id, occasion, email, language, {
                "order_id": order_id, "event_id": event.id, "count": counts[order_id],
                "deadline": deadline}, now))
    return len(rows), len(mine), _last(rows)


async def _invitations(session: AsyncSession, event, occasion: str, now: dt.datetime, *,
                       within: dt.timedelta, probe: bool = False,
                       after: int = 0) -> tuple[int, int, int]:
    """Pending invitations whose link expires within ``within``: the friend by e-mail, the
    buyer who sent it in chat (resend / revoke)."""
    rows = (await session.execute(
        select(Invitation.id, Invitation.email, Invitation.language,
               Invitation.invited_by_telegram_id, Invitation.expires_at, Ticket.id,
               Ticket.ref, Ticket.order_id)
        .join(Ticket, Ticket.id == Invitation.ticket_id)
        .where(Ticket.event_id == event.id, Ticket.state == TicketState.PENDING,
               Invitation.state == InvitationState.PENDING, Invitation.expires_at > now,
               Invitation.expires_at <= now + within, Invitation.id > after,
               _not_sent(INVITATION, occasion, Invitation.id))
        .order_by(Invitation.id).limit(BATCH)
    )).all()
    if probe:
        return len(rows), 0, 0
    mine = await _claim(session, INVITATION, occasion, [row[0] for row in rows], now)
    opted_out = set((await session.scalars(
        select(ReminderOptOut.telegram_id).where(ReminderOptOut.telegram_id.in_(
            {row[3] for row in rows if row[0] in mine and row[3] is not None}))
    )).all()) if mine else set()
    for invitation_id, email, language, buyer, expires, ticket_id, ref, order_id in rows:
        if invitation_id not in mine:
            continue
        session.add(_mail(INVITATION, invitation_id, occasion, email, language,
                          {"invitation_id": invitation_id}, now))
        if buyer is not None and buyer not in opted_out:
            session.add(_notification(buyer, "reminder_invitation", {
                "order_id": order_id, "ticket_id": ticket_id, "ticket_ref": ref,
                "email": email, "event": event.name, "expires": expires.isoformat(),
                "timezone": event.timezone},
                now))
    return len(rows), len(mine), _last(rows)


async def _event_day(session: AsyncSession, event, occasion: str, now: dt.datetime, *,
                     probe: bool = False, after: int = 0) -> tuple[int, int, int]:
    """Each ticket of the event in the hands of a holder who has the bot: the ticket again."""
    rows = (await session.execute(
        select(Ticket.id, Ticket.holder_telegram_id, Ticket.order_id)
        .where(Ticket.event_id == event.id, Ticket.state == TicketState.COMPLETED,
               Ticket.used_at.is_(None), Ticket.holder_telegram_id.is_not(None),
               _opted_in(Ticket.holder_telegram_id), Ticket.id > after,
               _not_sent(EVENT_DAY, occasion, Ticket.id))
        .order_by(Ticket.id).limit(BATCH)
    )).all()
    if probe:
        return len(rows), 0, 0
    mine = await _claim(session, EVENT_DAY, occasion, [row[0] for row in rows], now)
    for ticket_id, holder, order_id in rows:
        if ticket_id in mine:
            session.add(_notification(holder, "reminder_event_day",
                                      {"ticket_id": ticket_id, "order_id": order_id,
                                       "event": event.name}, now))
    return len(rows), len(mine), _last(rows)


async def reminders_on(store: Store, telegram_id: int) -> bool:
    async with store.read() as session:
        return await session.get(ReminderOptOut, telegram_id) is None


async def set_reminders(store: Store, telegram_id: int, on: bool) -> None:
    """Turn this user's reminders on or off; doing it twice changes nothing."""
    async with store.write() as session:
        if on:
            await session.execute(
                delete(ReminderOptOut).where(ReminderOptOut.telegram_id == telegram_id))
            return
        dialect = session.bind.dialect.name
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        await session.execute(
            insert(ReminderOptOut).values(telegram_id=telegram_id, since=utcnow())
            .on_conflict_do_nothing(index_elements=["telegram_id"]))



