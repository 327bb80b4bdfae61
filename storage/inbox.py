"""The inbox of incoming updates: each is stored before Telegram is told it arrived, claimed
before it is handled, and marked done in the transaction of its effects (``storage.applying``).

An entry is *unfinished* while ``done_at`` is NULL. ``locked_until`` is a lease: whoever claimed
the entry handles it until then; after that anyone may claim it again (its handler died, or was
told to retry later). Entries of one chat are claimed in ``update_id`` order: an entry waits
while an earlier one of its chat is unfinished, in this process or in any other, and also while
an earlier one is done but still leased: its deciding transaction marked it done, and its
handler is still sending the answer. ``finish`` releases the lease once the handler returned,
so that the chat's answers arrive in order even when its updates reach different processes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    and_,
    bindparam,
    delete,
    exists,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from storage.db.group_commit import GroupCommit
from storage.db.id_lists import among_ids
from storage.db.prepared import PreparedConnection
from storage.db.store import Store, utcnow
from storage.models import UpdateInbox

# Short, so that when a process dies its updates are taken over within seconds: the process
# handling an update renews its lease while it runs (``Inbox.renew``), so a slow update is not
# taken from a living process.
DEFAULT_LEASE = dt.timedelta(seconds=5)
# An entry nobody claimed is left to the process that stored it for this long.
DEFAULT_GRACE = dt.timedelta(seconds=3)
KEEP_DONE = dt.timedelta(days=2)  # Telegram redelivers an unconfirmed update for 24 hours.


@dataclass(frozen=True)
class Incoming:
    """An update as the inbox keeps it."""

    update_id: int
    chat_id: int | None
    payload: dict[str, Any]


@dataclass(frozen=True)
class Claim:
    """The right to handle an entry until ``until``; ``attempt`` counts every claim."""

    update_id: int
    attempt: int
    until: dt.datetime


_CLAIM, _FINISH = "claim", "finish"
_entries = UpdateInbox.__table__
_earlier = _entries.alias("earlier")
# Prepared once: built per call, these expressions cost more than running them. An entry is
# claimable when unfinished, not leased (or its lease ran out), and no earlier entry of its
# chat is unfinished (an entry without a chat never matches ``chat_id =``, so it never waits).
_CLAIM_ENTRIES = (
    update(_entries)
    .where(
        among_ids(_entries.c.update_id, "ids"),
        _entries.c.done_at.is_(None),
        or_(_entries.c.locked_until.is_(None), _entries.c.locked_until <= bindparam("now")),
        ~exists().where(_earlier.c.chat_id == _entries.c.chat_id,
                        _earlier.c.update_id < _entries.c.update_id,
                        or_(_earlier.c.done_at.is_(None),
                            _earlier.c.locked_until > bindparam("now"))),
    )
    .values(locked_until=bindparam("until"), attempts=_entries.c.attempts + 1)
    .returning(_entries.c.update_id, _entries.c.attempts)
)
# Done (if its deciding transaction did not mark it so already) and its lease released.
_FINISH_ENTRIES = (
    update(_entries)
    .where(among_ids(_entries.c.update_id, "ids"))
    .values(done_at=func.coalesce(_entries.c.done_at, bindparam("now")), locked_until=None)
)


class Inbox:
    """Update inbox operations on the store; any number of processes may share one."""

    def __init__(self, store: Store, *, lease: dt.timedelta = DEFAULT_LEASE,
                 grace: dt.timedelta = DEFAULT_GRACE) -> None:
        self.store = store
        self.lease = lease
        self.grace = grace
        self._bookkeeping: GroupCommit[tuple[str, int]] = GroupCommit(self._write_bookkeeping)

    async def record(self, updates: Sequence[Incoming]) -> None:
        """Store a batch (in one transaction); updates stored before are left as they are."""
        if not updates:
            return
        now = utcnow()
        rows = [{"update_id": u.update_id, "chat_id": u.chat_id, "payload": u.payload,
                 "received_at": now, "attempts": 0} for u in updates]
        insert = sqlite.insert if self.store.is_sqlite else postgresql.insert
        # Rows as parameters, not in the statement: one cached statement whatever the batch's
        # size (SQLAlchemy still sends them as one multi-row INSERT).
        statement = insert(_entries).on_conflict_do_nothing(index_elements=["update_id"])
        # Not the update's own effects: the inbox's bookkeeping is outside its accounting.
        await self.store.idempotent_write(lambda connection: connection.execute(statement, rows))

    async def claim(self, update_id: int) -> Claim | None:
        """Take the entry for one lease, or None: done, claimed by someone else, or waiting
        for an earlier unfinished entry of its chat. Shares its transaction with the other
        claims and finishes waiting at the time (``storage.db.group_commit``)."""
        return await self._bookkeeping.submit((_CLAIM, update_id))

    async def finish(self, update_id: int) -> None:
        """Its handler returned: mark the entry done, if its handling wrote nothing decisive
        (or gave up), and release its lease, so that the chat's next update may be claimed."""
        await self._bookkeeping.submit((_FINISH, update_id))

    async def _write_bookkeeping(self, items: Sequence[tuple[str, int]]) -> list[Any]:
        """Finishes first, then claims, in one trip to the store: an update finished here lets
        the next one of its chat be claimed in the same batch. Each statement is harmless
        alone (``Store.idempotent_write``): a claim not made is asked for again."""
        now = utcnow()
        until = now + self.lease
        finishing = [update_id for kind, update_id in items if kind == _FINISH]
        claiming = [update_id for kind, update_id in items if kind == _CLAIM]

        def write(connection: PreparedConnection) -> dict[int, int]:
            if finishing:
                connection.execute(_FINISH_ENTRIES, {"ids": finishing, "now": now})
            if not claiming:
                return {}
            return dict(connection.execute(
                _CLAIM_ENTRIES, {"ids": claiming, "now": now, "until": until}).all())

        attempts = await self.store.idempotent_write(write)
        return [
            (Claim(update_id, attempts[update_id], until) if update_id in attempts else None)
            if kind == _CLAIM else None
            for kind, update_id in items
        ]

    async def renew(self, claims: Sequence[Claim]) -> None:
        """Extend the leases of entries still being handled here by one lease from now. An
        entry claimed again since (by another process, after our lease ran out) is left to
        it: every claim counts an attempt."""
        if not claims:
            return
        until = utcnow() + self.lease
        async with self.store.write_connection() as connection:
            await connection.execute(
                update(_entries)
                .where(tuple_(_entries.c.update_id, _entries.c.attempts).in_(
                           [(claim.update_id, claim.attempt) for claim in claims]),
                       _entries.c.done_at.is_(None))
                .values(locked_until=until))

    async def retry_later(self, claim: Claim, delay: dt.timedelta) -> None:
        """Give the entry up for now: anyone may claim it again after ``delay``."""
        async with self.store.write(idempotent=True) as session:
            await session.execute(
                update(UpdateInbox)
                .where(UpdateInbox.update_id == claim.update_id, UpdateInbox.done_at.is_(None),
                       UpdateInbox.attempts == claim.attempt)
                .values(locked_until=utcnow() + delay)
                .execution_options(synchronize_session=False)
            )

    async def due(self, *, limit: int = 100, skip: Iterable[int] = (),
                  fresh_too: bool = False) -> list[Incoming]:
        """Unfinished entries that may be claimed now, oldest first: their lease ran out, or
        nobody claimed them within the grace time (at once with ``fresh_too``, at start-up).
        ``skip`` names entries this process is already handling."""
        now = utcnow()
        unclaimed_since = now if fresh_too else now - self.grace
        skipped = list(skip)
        query = (
            select(UpdateInbox.update_id, UpdateInbox.chat_id, UpdateInbox.payload)
            .where(UpdateInbox.done_at.is_(None),
                   or_(UpdateInbox.locked_until <= now,
                       and_(UpdateInbox.locked_until.is_(None),
                            UpdateInbox.received_at <= unclaimed_since)))
            .order_by(UpdateInbox.update_id)
            .limit(limit + len(skipped))
        )
        async with self.store.read() as session:
            rows = (await session.execute(query)).all()
        ignore = set(skipped)
        return [Incoming(*row) for row in rows if row[0] not in ignore][:limit]

    async def is_done(self, update_id: int) -> bool:
        async with self.store.read_connection() as connection:
            done = await connection.scalar(
                select(_entries.c.done_at).where(_entries.c.update_id == update_id))
        return done is not None

    async def unfinished(self) -> int:
        async with self.store.read() as session:
            return await session.scalar(
                select(func.count()).select_from(UpdateInbox)
                .where(UpdateInbox.done_at.is_(None)))

    async def prune(self, *, keep: dt.timedelta = KEEP_DONE) -> int:
        """Forget entries done longer ago than ``keep``; returns how many."""
        async with self.store.write(idempotent=True) as session:
            result = await session.execute(
                delete(UpdateInbox).where(UpdateInbox.done_at < utcnow() - keep))
            return result.rowcount
