"""The barcode change feed: what gate scanners poll to know which barcodes let people in.

What is promised: every barcode change of an event (a barcode issued, a barcode voided) gets a
position in that event's feed, written in the transaction of the change, and a reader that
pages the feed with ``since=<position>`` sees every committed change exactly once, in order,
whatever writers run concurrently. A cursor is a position, never a timestamp.

Why positions never appear out of order: a position is handed out by advancing the event's
row in ``barcode_feed_heads`` (``INSERT … ON CONFLICT DO UPDATE SET position = position + n
RETURNING position``). On PostgreSQL that row stays locked until the writer commits, so the
next writer of the same event waits and takes the next position only once the first one is
committed and visible: a reader can never see position 11 while 10 is still to come. A plain
sequence or identity column would not do: transaction A draws 10, B draws 11 and commits
first, a reader at 11 moves on and never sees 10. (The other cure, serving only positions below
the oldest transaction still in flight, ``pg_snapshot_xmin``, stalls the feed behind any long
transaction and does not exist on SQLite.) SQLite lets one writer in at a time, so the same
statements give the same guarantee there.

The price is that writers changing barcodes of one event take turns for that moment. To keep
the moment short and free of deadlocks, a change is only *noted* on the session while the use
case runs (``issue``, ``void``, ``note_issued``); just before the commit (``before_commit``)
the notes of each event are written, events in sorted order (an exchange touches two), with
one advance of each head: the lock is held for two statements and the commit.

Where the promise ends: a holder's name only changes with a new barcode (services reissue it),
so an entry's holder name stays true for as long as its barcode is valid.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable

from sqlalchemy import (
    Boolean,
    and_,
    bindparam,
    case,
    event,
    insert,
    literal,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session

from storage.db.prepared import SESSION_STATEMENTS, PreparedConnection, execute_in_session
from storage.models import (
    Barcode,
    BarcodeFeedEntry,
    BarcodeFeedHead,
    Event,
    Ticket,
    WordsValue,
)

_PENDING = "ticketbot_barcode_feed"
MAX_PAGE = 10_000
DEFAULT_PAGE = 1_000

_barcodes, _tickets = Barcode.__table__, Ticket.__table__
_feed, _heads = BarcodeFeedEntry.__table__, BarcodeFeedHead.__table__


@dataclasses.dataclass(frozen=True, slots=True)
class _Change:
    event_id: str
    ticket_id: int
    barcode: str
    voided: bool
    # Known when the caller has them (the importer); else read from the ticket at the commit.
    ticket_ref: str | None = None
    category: WordsValue | None = None


# --- writing: noted during the use case, written just before its commit -----------------------


_VOID = (
    update(_barcodes)
    .where(_barcodes.c.code == bindparam("void_code"), _barcodes.c.voided_at.is_(None))
    .values(voided_at=bindparam("voided"))
    # The event comes back with the change: no second statement on every holder change.
    .returning(_barcodes.c.ticket_id,
               select(_tickets.c.event_id).where(_tickets.c.id == _barcodes.c.ticket_id)
               .scalar_subquery())
)
_ISSUE = insert(_barcodes)


def _note(session: AsyncSession | Session, changes: Iterable[_Change]) -> None:
    session.info.setdefault(_PENDING, []).extend(changes)


async def void(session: AsyncSession, code: str, now: dt.datetime) -> None:
    """Void a barcode (if it is not void already) and note the change for the feed."""
    row = (await execute_in_session(session, _VOID, {"void_code": code, "voided": now})
           ).first()
    if row is not None:
        _note(session, [_Change(row[1], row[0], code, True)])


async def issue(session: AsyncSession, ticket: Ticket, code: str, now: dt.datetime) -> None:
    """Record a new barcode of ``ticket`` and note it for the feed."""
    await execute_in_session(
        session, _ISSUE,
        {"code": code, "ticket_id": ticket.id, "issued_at": now, "voided_at": None})
    _note(session, [_Change(ticket.event_id, ticket.id, code, False)])


def note_issued(session: AsyncSession,
                issued: Iterable[tuple[str, int, str, str, str]]) -> None:
    """Note barcodes the caller inserted itself, in bulk (the importer): (event, ticket id,
    barcode, ticket ref, category) each. Imported tickets have no holder yet."""
    _note(session, (_Change(event_id, ticket_id, code, False, ref, category)
                    for event_id, ticket_id, code, ref, category in issued))


def _advance_statement(dialect: str):
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_heads).values(
        event_id=bindparam("event_id"), position=bindparam("count"))
    return statement.on_conflict_do_update(
        index_elements=[_heads.c.event_id],
        set_={"position": _heads.c.position + statement.excluded.position},
    ).returning(_heads.c.position)


_ADVANCE = {dialect: _advance_statement(dialect) for dialect in ("postgresql", "sqlite")}
_INSERT_KNOWN = insert(_feed)
# An entry whose ticket details are read as the ticket stands at the commit (its new holder).
_INSERT_FROM_TICKET = insert(_feed).from_select(
    ["event_id", "position", "barcode", "voided", "ticket_id", "ticket_ref", "category",
     "holder_name"],
    select(
        bindparam("event_id"), bindparam("position"), bindparam("barcode"),
        bindparam("voided", type_=Boolean), _tickets.c.id, _tickets.c.ref, _tickets.c.category,
        case((bindparam("voided", type_=Boolean), literal(None)),
             else_=_tickets.c.holder_name),
    ).where(_tickets.c.id == bindparam("ticket_id")),
)


@event.listens_for(Session, "before_commit")
def _write_noted_changes(session: Session) -> None:
    """Give the noted changes their positions and write them, in the committing transaction.

    A synchronous ORM hook: under the asyncio extension it runs inside the commit's greenlet,
    where the sync connection's statements are awaited for us."""
    changes: list[_Change] | None = session.info.pop(_PENDING, None)
    if not changes:
        return
    session.flush()  # the tickets' last changes, which the entries read
    raw = session.connection()
    advance = _ADVANCE[raw.dialect.name]
    connection = PreparedConnection(raw, session.info[SESSION_STATEMENTS])
    by_event: dict[str, list[_Change]] = {}
    for change in changes:
        by_event.setdefault(change.event_id, []).append(change)
    for event_id in sorted(by_event):  # one order for all writers: no deadlock
        noted = by_event[event_id]
        last = connection.execute(advance, {"event_id": event_id, "count": len(noted)}
                                  ).scalar_one()
        known, from_ticket = [], []
        for position, change in enumerate(noted, start=last - len(noted) + 1):
            row = {"event_id": event_id, "position": position, "barcode": change.barcode,
                   "voided": change.voided, "ticket_id": change.ticket_id}
            if change.ticket_ref is not None:
                known.append(row | {"ticket_ref": change.ticket_ref,
                                    "category": change.category, "holder_name": None})
            else:
                from_ticket.append(row)
        for start in range(0, len(known), 5_000):
            connection.execute(_INSERT_KNOWN, known[start:start + 5_000])
        if from_ticket:
            connection.execute(_INSERT_FROM_TICKET, from_ticket)


async def write_noted(session: AsyncSession) -> None:
    """Write the changes noted so far now, in the open transaction: a festival's import notes a
    million barcodes, which would otherwise all wait in memory for its commit. Their heads stay
    locked until that commit, so positions still become visible in order."""
    await session.run_sync(_write_noted_changes)


@event.listens_for(Session, "after_rollback")
def _forget_noted_changes(session: Session) -> None:
    session.info.pop(_PENDING, None)


# --- reading ------------------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor this feed never handed out."""


@dataclasses.dataclass(frozen=True, slots=True)
class Cursor:
    """Where a reader stands: after ``position`` of the change feed, or, while it takes a
    snapshot, after ``position`` of the valid barcodes issued up to ``head``."""

    position: int = 0
    snapshot_head: int | None = None

    _FORMAT = re.compile(r"(?:s(\d{1,18})\.)?(\d{1,18})")

    @classmethod
    def parse(cls, text: str) -> Cursor:
        match = cls._FORMAT.fullmatch(text)
        if match is None:
            raise BadCursor(text)
        head = int(match[1]) if match[1] is not None else None
        position = int(match[2])
        if head is not None and position > head:
            raise BadCursor(text)
        return cls(position, head)

    def __str__(self) -> str:
        if self.snapshot_head is None:
            return str(self.position)
        return f"s{self.snapshot_head}.{self.position}"


@dataclasses.dataclass(frozen=True, slots=True)
class FeedBarcode:
    barcode: str
    ticket_ref: str
    category: WordsValue  # maybe per language: the route picks one
    holder_name: str | None


@dataclasses.dataclass(frozen=True, slots=True)
class FeedPage:
    """One page of an event's feed: barcodes that became valid and barcodes voided, the cursor
    to ask with next, and whether asking again at once would find more."""

    event_id: str
    valid: list[FeedBarcode]
    voided: list[str]
    cursor: Cursor
    more: bool
    snapshot: bool


_HEAD = select(_heads.c.position).where(_heads.c.event_id == bindparam("event_id"))
_EVENT = select(Event.__table__.c.id).where(Event.__table__.c.id == bindparam("event_id"))
_CHANGES = (
    select(_feed.c.position, _feed.c.barcode, _feed.c.voided, _feed.c.ticket_ref,
           _feed.c.category, _feed.c.holder_name)
    .where(_feed.c.event_id == bindparam("event_id"), _feed.c.position > bindparam("after"))
    .order_by(_feed.c.position)
    .limit(bindparam("limit"))
)
# A snapshot lists the barcodes issued up to the head it started at and still valid now; the
# changes after that head, read next, settle whatever changed while it was being read.
_SNAPSHOT = (
    select(_feed.c.position, _feed.c.barcode, _feed.c.voided, _feed.c.ticket_ref,
           _feed.c.category, _feed.c.holder_name)
    .join(_barcodes, and_(_barcodes.c.code == _feed.c.barcode,
                          _barcodes.c.voided_at.is_(None)))
    .where(_feed.c.event_id == bindparam("event_id"), _feed.c.position > bindparam("after"),
           _feed.c.position <= bindparam("head"), _feed.c.voided.is_(False))
    .order_by(_feed.c.position)
    .limit(bindparam("limit"))
)


class UnknownEvent(LookupError):
    pass


async def _head(connection: AsyncConnection, event_id: str) -> int:
    return (await connection.execute(_HEAD, {"event_id": event_id})).scalar() or 0


async def read_page(connection: AsyncConnection, event_id: str, cursor: Cursor | None,
                    limit: int = DEFAULT_PAGE) -> FeedPage:
    """A page of the feed after ``cursor``; with none, the first page of a snapshot of the
    valid barcodes. Keyset pages on the feed's primary key: memory stays flat for any size."""
    if (await connection.execute(_EVENT, {"event_id": event_id})).first() is None:
        raise UnknownEvent(event_id)
    if cursor is None:
        cursor = Cursor(0, await _head(connection, event_id))
    params = {"event_id": event_id, "after": cursor.position, "limit": limit + 1}
    if cursor.snapshot_head is None:
        rows = (await connection.execute(_CHANGES, params)).all()
    else:
        params["head"] = cursor.snapshot_head
        rows = (await connection.execute(_SNAPSHOT, params)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1].position if rows else cursor.position
    if cursor.snapshot_head is None:
        next_cursor = Cursor(last)
    elif more:
        next_cursor = Cursor(last, cursor.snapshot_head)
    else:  # the snapshot is complete: go on with the changes made since it started
        next_cursor = Cursor(cursor.snapshot_head)
        more = await _head(connection, event_id) > cursor.snapshot_head
    return FeedPage(
        event_id=event_id,
        valid=[FeedBarcode(row.barcode, row.ticket_ref, row.category, row.holder_name)
               for row in rows if not row.voided],
        voided=[row.barcode for row in rows if row.voided],
        cursor=next_cursor, more=more, snapshot=cursor.snapshot_head is not None,
    )

