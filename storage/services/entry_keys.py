"""The signing keys of rotating entry codes (storage/entry_codes.py): one live key per event,
made when first needed, rotated on demand; and the live ticket a holder's page draws.

A partial unique index lets one key per event be live: two processes making it at once both
insert with ``ON CONFLICT DO NOTHING`` and read back the one that won. Rotating retires the live
key and makes a new one, in one transaction. A retired key still verifies codes for
``RETIRED_KEY_GRACE`` (screens opened before the rotation keep working until they reload), then
no more: codes computed with a stolen step secret stop getting in.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from storage import entry_codes
from storage.db.store import Store, utcnow
from storage.entry_codes import KeyMaterial, SignedTicket
from storage.models import Barcode, EntryCode, EntryKey, Event, Ticket
from storage.ticket_delivery import TicketCard

_keys, _events = EntryKey.__table__, Event.__table__
_tickets, _barcodes = Ticket.__table__, Barcode.__table__

_LIVE = select(_keys.c.key_id, _keys.c.private_key, _keys.c.public_key,
               _keys.c.step_secret).where(_keys.c.event_id == bindparam("event_id"),
                                          _keys.c.retired_at.is_(None))
RETIRED_KEY_GRACE = dt.timedelta(hours=1)
_EVER = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_STILL_VERIFIES = (_keys.c.retired_at.is_(None)) | (_keys.c.retired_at > bindparam("since"))
_ALL = (select(_keys.c.key_id, _keys.c.public_key, _keys.c.step_secret, _keys.c.retired_at)
        .where(_keys.c.event_id == bindparam("event_id"), _STILL_VERIFIES)
        .order_by(_keys.c.created_at))
_BY_ID = (select(_keys.c.event_id, _keys.c.public_key, _keys.c.step_secret,
                 _events.c.entry_period_seconds)
          .join(_events, _events.c.id == _keys.c.event_id)
          .where(_keys.c.key_id == bindparam("key_id"), _STILL_VERIFIES))
# A static code is printed and mailed: it cannot be redrawn when the key rotates, so any key
# of the event verifies it (the private keys never leave the server; retiring is about the step
# secrets scanners hold).
_ANY_BY_ID = (select(_keys.c.event_id, _keys.c.public_key)
              .where(_keys.c.key_id == bindparam("key_id")))
_RETIRE = (update(_keys).where(_keys.c.event_id == bindparam("retiring_event"),
                               _keys.c.retired_at.is_(None))
           .values(retired_at=bindparam("now")))


def _insert_if_none_live(dialect: str):
    statement = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(_keys)
    return statement.on_conflict_do_nothing(index_elements=[_keys.c.event_id],
                                            index_where=text("retired_at IS NULL"))


_INSERT = {dialect: _insert_if_none_live(dialect) for dialect in ("postgresql", "sqlite")}


async def live_key(connection: AsyncConnection, event_id: str, now: dt.datetime) -> KeyMaterial:
    """The event's live key, made now if it has none (in the caller's write transaction)."""
    row = (await connection.execute(_LIVE, {"event_id": event_id})).first()
    if row is None:
        fresh = entry_codes.new_key()
        await connection.execute(_INSERT[connection.dialect.name], {
            "key_id": fresh.key_id, "event_id": event_id, "private_key": fresh.private_key,
            "public_key": fresh.public_key, "step_secret": fresh.step_secret,
            "created_at": now})
        row = (await connection.execute(_LIVE, {"event_id": event_id})).one()
    return KeyMaterial(row.key_id, row.private_key, row.public_key, row.step_secret)


async def rotate_key(store: Store, event_id: str) -> str:
    """Retire the event's live key and make a new one; its id. Codes signed with the old key
    still verify (scanners keep it); new codes are signed with the new one."""
    now = utcnow()
    async with store.write_connection() as connection:
        await connection.execute(_RETIRE, {"retiring_event": event_id, "now": now})
        return (await live_key(connection, event_id, now)).key_id


@dataclasses.dataclass(frozen=True, slots=True)
class GateKey:
    """A key as scanners get it: the public key and the step secret, never the private key."""

    key_id: str
    public_key: bytes
    step_secret: bytes
    retired: bool


async def gate_keys(connection: AsyncConnection, event_id: str,
                    now: dt.datetime | None = None, *, static: bool = False) -> list[GateKey]:
    """The keys that verify codes now: the live one, and those retired within the grace;
    every key of the event for a ``static`` one (a printed code outlives rotations)."""
    since = _EVER if static else (now or utcnow()) - RETIRED_KEY_GRACE
    return [GateKey(row.key_id, row.public_key, row.step_secret, row.retired_at is not None)
            for row in await connection.execute(_ALL, {"event_id": event_id, "since": since})]


@dataclasses.dataclass(frozen=True, slots=True)
class KeyOfCode:
    event_id: str
    public_key: bytes
    step_secret: bytes
    period_seconds: int


async def key_of_code(connection: AsyncConnection, key_id: str,
                      now: dt.datetime | None = None) -> KeyOfCode | None:
    """The key a code names, if it still verifies codes at ``now``."""
    since = (now or utcnow()) - RETIRED_KEY_GRACE
    row = (await connection.execute(_BY_ID, {"key_id": key_id, "since": since})).first()
    return None if row is None else KeyOfCode(*row)


@dataclasses.dataclass(frozen=True, slots=True)
class StaticKey:
    event_id: str
    public_key: bytes


async def key_of_static_code(connection: AsyncConnection, key_id: str) -> StaticKey | None:
    """The key a static code names, retired or not (a printed code outlives rotations)."""
    row = (await connection.execute(_ANY_BY_ID, {"key_id": key_id})).first()
    return None if row is None else StaticKey(*row)


_TICKET = (select(_tickets.c.ref, _tickets.c.barcode, _events.c.id.label("event_id"),
                  _events.c.entry_code, _events.c.entry_period_seconds)
           .join(_events, _events.c.id == _tickets.c.event_id)
           .where(_tickets.c.id == bindparam("ticket_id")))


async def signed_ticket(store: Store, ticket_id: int) -> SignedTicket | None:
    """What the holder's page needs to draw the ticket's live code; None for a static event.
    The caller has checked that the reader holds the ticket."""
    async with store.read_connection() as connection:
        row = (await connection.execute(_TICKET, {"ticket_id": ticket_id})).one()
        if row.entry_code != EntryCode.ROTATING:
            return None
        found = (await connection.execute(_LIVE, {"event_id": row.event_id})).first()
    if found is not None:  # the usual case: no write transaction for a holder's view
        key = KeyMaterial(found.key_id, found.private_key, found.public_key, found.step_secret)
    else:
        async with store.write_connection() as connection:
            key = await live_key(connection, row.event_id, utcnow())
    return entry_codes.sign_ticket(key, row.event_id, row.ref, row.barcode,
                                   row.entry_period_seconds)


async def rotating_event_ids(store: Store) -> list[str]:
    """The events whose tickets show a live code (they need the Mini App)."""
    async with store.read() as session:
        return list(await session.scalars(
            select(Event.id).where(Event.entry_code == EntryCode.ROTATING).order_by(Event.id)))


async def live_ticket(store: Store, card: TicketCard,
                      now: dt.datetime | None = None) -> SignedTicket | None:
    """The live code's makings for a held rotating ticket, or None: a static event's ticket,
    or before the event's reveal time (``card.reveal_at``), when no code may be shown yet."""
    now = now or utcnow()
    if not card.rotating or (card.reveal_at is not None and now < card.reveal_at):
        return None
    return await signed_ticket(store, card.ticket_id)


_VOIDED_OF_EVENT = (select(_barcodes.c.code)
                    .join(_tickets, _tickets.c.id == _barcodes.c.ticket_id)
                    .where(_tickets.c.event_id == bindparam("event_id"),
                           _barcodes.c.voided_at.is_not(None)))


async def voided_tokens(connection: AsyncConnection, event_id: str) -> list[str]:
    """The tokens of every voided barcode of the event: what a scanner refuses offline."""
    return [entry_codes.token_of(code)
            for code in (await connection.execute(_VOIDED_OF_EVENT,
                                                  {"event_id": event_id})).scalars()]
