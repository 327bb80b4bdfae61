"""The one leased queue behind every outbox (mails, chat news, ticket changes): rows written in
the transaction of their cause, claimed when due, finished once carried out, retried later.

What is promised, and where the promise ends:

- **Never two workers on one row at a time.** A claim moves the row's ``next_attempt_at`` to the
  end of a lease, with a conditional update (``WHERE not finished AND next_attempt_at <= now``):
  of two processes claiming together, one takes the row and the other finds it no longer due.
  PostgreSQL's ``FOR UPDATE SKIP LOCKED`` lets the other one take the next rows instead of
  waiting; SQLite, which has one writer at a time, gets the same result by waiting.
- **Never lost.** A row leaves the queue only when its worker finishes it (or gives it up after
  ``max_attempts`` tries, where a queue has such a limit). A worker that dies leaves its rows
  leased: they are due again when the lease runs out.
- **At least once, not exactly once.** A crash between the effect (Telegram's answer, the SMTP
  server's) and ``finish`` repeats the effect once the lease has run out.
- **In order where a queue asks for it.** A queue with a ``ready`` condition takes only the
  rows it holds true for: the webhooks' takes a delivery only once every earlier delivery of
  its order to its endpoint is finished, so an order's messages arrive in the order they were
  written, one at a time (a failing one holds back the later ones until it is given up).
- **A retry is the lease holder's.** ``retry_later`` and ``put_back`` change a row only while the
  caller's lease holds: once it ran out, another worker may own the row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Row, and_, bindparam, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from storage.db.id_lists import among_ids
from storage.db.prepared import PreparedConnection, execute_in_session
from storage.db.store import Store, utcnow
from storage.models import ChatNotification, OutboxMail, WebhookDelivery
from storage.models.tickets import TicketChange


@dataclass(frozen=True)
class Lease:
    """The right to carry out row ``id`` until ``until``; ``attempts`` counts this claim."""

    id: int
    attempts: int
    until: dt.datetime


class LeasedQueue:
    """A table used as a queue: ``finished`` is NULL while a row waits, ``next_attempt_at`` says
    when it is due (or until when it is leased), ``attempts`` counts the claims. ``order`` is
    the order in which due rows are taken; ``ready``, if given, a condition a due row must
    also meet to be taken."""

    def __init__(self, model: Any, *, finished: InstrumentedAttribute,
                 order: Sequence[InstrumentedAttribute], max_attempts: int | None = None,
                 ready: ColumnElement[bool] | None = None) -> None:
        self.model = model
        self.finished = finished
        self.order = tuple(order)
        self.max_attempts = max_attempts
        self._ready = (ready,) if ready is not None else ()
        self._due = model.next_attempt_at <= bindparam("now")
        # Built once: most rounds of every worker ask this and find nothing.
        self._any_due = (select(model.id).where(finished.is_(None), self._due, *self._ready)
                         .limit(1))
        # A claim's two statements, built once and run prepared (``Store.write_prepared``). Not
        # as one UPDATE with a LIMIT … FOR UPDATE SKIP LOCKED subquery: PostgreSQL took all
        # 60 due rows of a test that way, not a batch of 50.
        self._take = (select(model.id).where(finished.is_(None), self._due, *self._ready)
                      .order_by(*self.order).limit(bindparam("limit"))
                      .with_for_update(skip_locked=True))
        self._lease = (update(model.__table__)
                       .where(among_ids(model.id, "ids"), finished.is_(None), self._due)
                       .values(next_attempt_at=bindparam("until"), attempts=model.attempts + 1)
                       .returning(model.id, model.attempts))
        self._finishing: dict[tuple[str, ...], Any] = {}

    async def claim(self, store: Store, *, limit: int, lease: dt.timedelta,
                    now: dt.datetime | None = None) -> list[Lease]:
        """Take up to ``limit`` due rows for one lease, in the queue's order."""
        now = now or utcnow()
        # Most rounds find nothing: a plain read first keeps them from taking a writer's turn.
        if not await store.read_rows(self._any_due, {"now": now}):
            return []
        until = now + lease

        def take(connection: PreparedConnection) -> tuple[list[int], list[Row[Any]]]:
            due = [row[0] for row in
                   connection.execute(self._take, {"now": now, "limit": limit}).all()]
            if not due:
                return due, []
            return due, connection.execute(
                self._lease, {"ids": due, "now": now, "until": until}).all()

        due, claimed = await store.write_prepared(take)
        place = {row_id: index for index, row_id in enumerate(due)}
        return sorted((Lease(row_id, attempts, until) for row_id, attempts in claimed),
                      key=lambda claimed_lease: place[claimed_lease.id])

    async def finish(self, store: Store, ids: Sequence[int], *, now: dt.datetime | None = None,
                     **values: Any) -> None:
        """Mark rows carried out (with ``values`` for other columns, e.g. a note)."""
        if not ids:
            return
        statement, parameters = self._finish(ids, now, values)
        await store.write_prepared(
            lambda connection: connection.execute(statement, parameters))

    async def finish_in(self, session: AsyncSession, ids: Sequence[int], *,
                        now: dt.datetime | None = None, **values: Any) -> None:
        """``finish`` inside the caller's transaction, beside what the work wrote."""
        await execute_in_session(session, *self._finish(ids, now, values))

    def _finish(self, ids: Sequence[int], now: dt.datetime | None,
                values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        """The statement finishing rows and setting ``values`` (one per set of columns, built
        once), and its parameters."""
        columns = tuple(sorted(values))
        statement = self._finishing.get(columns)
        if statement is None:
            statement = self._finishing[columns] = (
                update(self.model.__table__)
                .where(among_ids(self.model.id, "ids"), self.finished.is_(None))
                .values({self.finished.key: bindparam("finished"),
                         **{name: bindparam(f"new_{name}") for name in columns}}))
        return statement, {"ids": list(ids), "finished": now or utcnow(),
                           **{f"new_{name}": value for name, value in values.items()}}

    async def retry_later(self, store: Store, lease: Lease, delay: dt.timedelta,
                          **values: Any) -> bool:
        """The attempt failed: due again after ``delay``, or given up (finished) once it was
        the queue's last attempt. False if the lease had run out (the row is another's)."""
        now = utcnow()
        values["next_attempt_at"] = now + delay
        if self.max_attempts is not None and lease.attempts >= self.max_attempts:
            values[self.finished.key] = now
        return await self._while_leased(store, lease, values)

    async def retry_all_later_in(self, session: AsyncSession, leases: Sequence[Lease],
                                 delay: dt.timedelta, **values: Any) -> int:
        """``retry_later`` of several rows of one claim (one lease end) in one statement,
        inside the caller's transaction; returns how many were still leased. For queues
        without ``max_attempts`` (their callers decide when to give up)."""
        assert self.max_attempts is None and len({lease.until for lease in leases}) <= 1
        if not leases:
            return 0
        model = self.model
        result = await session.execute(
            update(model)
            .where(among_ids(model.id, "ids"), self.finished.is_(None),
                   model.next_attempt_at == leases[0].until)
            .values(next_attempt_at=utcnow() + delay, **values)
            .execution_options(synchronize_session=False),
            {"ids": [lease.id for lease in leases]})
        return result.rowcount

    async def put_back(self, store: Store, lease: Lease, delay: dt.timedelta) -> bool:
        """Not attempted after all (the worker was told to wait): due again after ``delay``,
        and the claim does not count as an attempt."""
        return await self._while_leased(store, lease, {
            "next_attempt_at": utcnow() + delay, "attempts": self.model.attempts - 1})

    async def _while_leased(self, store: Store, lease: Lease, values: dict[str, Any]) -> bool:
        model = self.model
        async with store.write() as session:
            result = await session.execute(
                update(model)
                .where(model.id == lease.id, self.finished.is_(None),
                       model.next_attempt_at == lease.until)
                .values(values).execution_options(synchronize_session=False))
        return result.rowcount == 1

    async def unfinished(self, store: Store) -> int:
        """How many rows are not carried out yet (due, leased or waiting to retry)."""
        async with store.read_connection() as connection:
            return (await connection.execute(
                select(func.count()).select_from(self.model.__table__)
                .where(self.finished.is_(None)))).scalar_one()

    async def forget_finished(self, store: Store, *, older_than: dt.timedelta) -> int:
        """Delete rows finished longer ago than ``older_than``."""
        async with store.write(idempotent=True) as session:
            result = await session.execute(
                delete(self.model).where(self.finished < utcnow() - older_than)
                .execution_options(synchronize_session=False))
        return result.rowcount


# --- the store's queues -----------------------------------------------------------------------

# Mails: the longest-waiting first, so that a mail retried for hours does not hold up new ones.
# Never given up: an SMTP server may be down for a day.
MAILS = LeasedQueue(OutboxMail, finished=OutboxMail.sent_at,
                    order=(OutboxMail.next_attempt_at, OutboxMail.id))
# News and ticket changes in the order they were written: a chat's news in order, and a ticket
# renamed twice in a row ends with its newest code in the holder's chat. Given up after a few
# tries: the order overview and /start still show what they said.
NEWS = LeasedQueue(ChatNotification, finished=ChatNotification.sent_at,
                   order=(ChatNotification.id,), max_attempts=8)
TICKET_CHANGES = LeasedQueue(TicketChange, finished=TicketChange.done_at,
                             order=(TicketChange.id,), max_attempts=8)

# Webhook deliveries: an order's messages to one endpoint strictly in the order they were
# written (``ready``: no earlier delivery of its order to its endpoint is unfinished, a probe of
# a partial index per due row). Not "among the heads of the chains" (``id IN (SELECT min(id) …
# GROUP BY …)``), which was faster on SQLite but became a quadratic nested loop on PostgreSQL
# while a freshly filled table had no statistics yet (10 s per claim at 5,000 rows). Given up
# by the sender after the retry schedule of Standard Webhooks (bot/webhooks.py), not here.
_earlier = aliased(WebhookDelivery)
WEBHOOKS = LeasedQueue(
    WebhookDelivery, finished=WebhookDelivery.finished_at, order=(WebhookDelivery.id,),
    ready=~exists().where(and_(_earlier.endpoint == WebhookDelivery.endpoint,
                               _earlier.order_id == WebhookDelivery.order_id,
                               _earlier.id < WebhookDelivery.id,
                               _earlier.finished_at.is_(None))))
