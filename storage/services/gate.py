"""Scanning a barcode at the gate: the one rule behind the gate API and the staff's gate view.

What is promised: a valid barcode lets exactly one person in. The first scan of it answers
``ok`` and marks its ticket *used* with a conditional ``UPDATE … WHERE used_at IS NULL AND
barcode = … AND version = …``: of two gates scanning it at the same moment, the database lets
one update the row and the other, reading again, finds it used (``already_scanned``, with when
and at which gate). A partial unique index (one ``ok`` scan per ticket) backs that up. An old
barcode of a ticket that changed holder (or left the order) answers ``void``; a barcode never
issued, or of another event than the one the gate admits to, ``unknown``.

A used ticket changes no more (``services.change_ticket`` refuses it), so its entry settles
what was open: an invitation to a friend is withdrawn (the buyer's barcode got in), a resale
listing is cancelled and the ticket is back as it was listed.

A scanner that retries after a timeout sends the same ``nonce``: the first answer is kept under
(device, nonce), in the transaction of the scan, and given again unchanged; the retry scans
nothing. Two requests racing with one nonce meet at the unique constraint, and the loser reads
the winner's answer. A nonce sent again with another barcode is refused (``NonceReused``).

Every scan is recorded in the audit history (the ticket's, when the barcode is known), under
the gate device: an identifier of its token, never the token.

A ``rotating`` event's tickets get in only by their live code (storage/entry_codes.py): a
genuine code of another time step, or the ticket's still barcode, answers ``stale``. A ``static``
event's ticket gets in by its signed code (what its QR code holds) or its bare barcode (typed
by hand); a signed code no key of ours signed is ``unknown``.

Scans a device made offline are uploaded later (``scan_offline``), each decided as it would
have been at its ``scanned_at``. A ticket let in by two devices that could not know of each
other is recorded twice: the earlier entry is the ``ok`` (an ``ok`` recorded before for a later
moment steps down), the later one is ``already_scanned`` and flagged ``conflict``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from storage import entry_codes
from storage.db.store import Store, utcnow
from storage.models import (
    ActorKind,
    Barcode,
    EntryCode,
    Event,
    GateScan,
    Invitation,
    InvitationState,
    LinkToken,
    ListingState,
    ResaleListing,
    ScanResult,
    Ticket,
    TicketState,
    sql_constant,
)
from storage.services import audit, entry_keys
from storage.webhook_outbox import announce_scan

MAX_BARCODE = 64  # what a scan is recorded under
MAX_CODE = entry_codes.MAX_CODE  # what a scanner may send: a barcode or a rotating code
MAX_GATE = 100
MAX_NONCE = 100


class NonceReused(ValueError):
    """The scanner sent a nonce it already used for another barcode."""


@dataclasses.dataclass(frozen=True)
class ScanAnswer:
    """What the gate is told. ``scanned_at``/``gate`` are those of the ticket's first entry
    (``ok`` and ``already_scanned``); ``voided_at`` when the barcode became void."""

    result: ScanResult
    barcode: str
    ticket_ref: str | None = None
    event_id: str | None = None
    category: str | dict[str, str] | None = None  # as the ticket's: maybe per language
    holder_name: str | None = None
    scanned_at: dt.datetime | None = None
    gate: str | None = None
    voided_at: dt.datetime | None = None
    # Uploaded offline scans only: two devices let the ticket in; the other entry's gate/time.
    conflict: bool = False
    other_gate: str | None = None
    other_scanned_at: dt.datetime | None = None

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in _MOMENTS:
            if values[name] is not None:
                values[name] = values[name].isoformat()
        values["result"] = self.result.value
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ScanAnswer:
        values = dict(values)
        values["result"] = ScanResult(values["result"])
        for name in _MOMENTS:
            if values.get(name) is not None:
                values[name] = dt.datetime.fromisoformat(values[name])
        return cls(**values)


_MOMENTS = ("scanned_at", "voided_at", "other_scanned_at")
_scans, _tickets, _barcodes = GateScan.__table__, Ticket.__table__, Barcode.__table__
_events = Event.__table__
_invitations, _links = Invitation.__table__, LinkToken.__table__
_listings = ResaleListing.__table__
_ATTEMPTS = 5

_PRIOR = select(_scans.c.barcode, _scans.c.answer).where(
    _scans.c.device == bindparam("device"), _scans.c.nonce == bindparam("nonce"))
_LOOKUP = (
    select(_barcodes.c.voided_at, _tickets.c.id, _tickets.c.order_id, _tickets.c.ref,
           _tickets.c.event_id, _tickets.c.category, _tickets.c.holder_name,
           _tickets.c.state, _tickets.c.version, _tickets.c.used_at,
           (_tickets.c.barcode == _barcodes.c.code).label("current"), _events.c.entry_code)
    .join(_tickets, _tickets.c.id == _barcodes.c.ticket_id)
    .join(_events, _events.c.id == _tickets.c.event_id)
    .where(_barcodes.c.code == bindparam("code"))
)
# The first entry, only if the ticket is as it was read (its version), so that what it was
# (sent to a friend, on resale) is what is settled below. A ticket sent to a friend is back
# with the buyer, whose barcode got in; one on resale is taken off the market.
def _enter_statement(**values: Any) -> Any:
    return (
        update(_tickets)
        .where(_tickets.c.id == bindparam("ticket"), _tickets.c.version == bindparam("version"),
               _tickets.c.barcode == bindparam("code"), _tickets.c.used_at.is_(None))
        .values(used_at=bindparam("now"), updated_at=bindparam("now"),
                version=_tickets.c.version + 1, **values)
    )


_ENTER = {
    None: _enter_statement(),
    TicketState.PENDING: _enter_statement(state=TicketState.TO_ASSIGN.value, holder_email=None,
                                          email_key=None),
    # Back to the state it was listed from.
    TicketState.ON_RESALE: _enter_statement(
        state=select(_listings.c.previous_state)
        .where(_listings.c.ticket_id == _tickets.c.id,
               _listings.c.state == sql_constant(ListingState.LISTED))
        .scalar_subquery()),
}
_WITHDRAW_INVITATION = (
    update(_invitations)
    .where(_invitations.c.ticket_id == bindparam("ticket"),
           _invitations.c.state == InvitationState.PENDING.value)
    .values(state=InvitationState.REVOKED.value, finished_at=bindparam("now"))
    .returning(_invitations.c.id)
)
_REVOKE_LINKS = (
    update(_links)
    .where(_links.c.invitation_id == bindparam("invitation"), _links.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)
_CANCEL_LISTING = (
    update(_listings)
    .where(_listings.c.ticket_id == bindparam("ticket"),
           _listings.c.state == sql_constant(ListingState.LISTED))
    .values(state=ListingState.CANCELLED.value, finished_at=bindparam("now"),
            updated_at=bindparam("now"))
)
# Written out, not bound: SQLite uses the partial index only for its own literal condition.
_FIRST_ENTRY = select(_scans.c.id, _scans.c.at, _scans.c.gate, _scans.c.device).where(
    _scans.c.ticket_id == bindparam("ticket"), text("gate_scans.result = 'ok'"))
_RECORD = insert(_scans)
# An offline entry earlier than the recorded one: that one steps down and is the conflict.
_STEP_DOWN = (update(_scans).where(_scans.c.id == bindparam("scan"))
              .values(result=ScanResult.ALREADY_SCANNED, conflict=True))
_ENTERED_EARLIER = (update(_tickets).where(_tickets.c.id == bindparam("ticket"))
                    .values(used_at=bindparam("at")))
_BARCODES_OF_REF = (select(_barcodes.c.code)
                    .join(_tickets, _tickets.c.id == _barcodes.c.ticket_id)
                    .where(_tickets.c.event_id == bindparam("event_id"),
                           _tickets.c.ref == bindparam("ref")))


@dataclasses.dataclass(frozen=True, slots=True)
class _Scan:
    """What is being scanned: the text read, the barcode it stands for (None: no barcode of
    ours), whether it was a rotating code and whether that code is past its time; when and by
    which device, and whether it was made offline."""

    text: str
    barcode: str | None
    rotating: bool
    stale: bool
    gate: str
    device: str
    at: dt.datetime
    offline: bool

    @property
    def recorded_as(self) -> str:
        return self.barcode or self.text[:MAX_BARCODE]


async def scan_barcode(store: Store, barcode: str, gate: str, nonce: str, gate_device: str, *,
                       event_id: str | None = None) -> ScanAnswer:
    """Scan ``barcode`` (a barcode or a rotating code) at ``gate`` (a name the scanner gives)
    from ``gate_device``; the same ``nonce`` from the same device always gets the first answer
    again. With ``event_id``, a code of another event is ``unknown`` here (and not used up)."""
    return await _scan_retrying(store, barcode, gate, nonce, gate_device, event_id, None)


async def scan_offline(store: Store, barcode: str, gate: str, nonce: str, gate_device: str,
                       scanned_at: dt.datetime, *, event_id: str | None = None) -> ScanAnswer:
    """Record a scan ``gate_device`` made offline at ``scanned_at``, decided as it would have
    been then; uploading it again (same nonce) changes nothing and gives the same answer."""
    return await _scan_retrying(store, barcode, gate, nonce, gate_device, event_id, scanned_at)


async def _scan_retrying(store: Store, text_read: str, gate: str, nonce: str, device: str,
                         event_id: str | None, scanned_at: dt.datetime | None) -> ScanAnswer:
    for _attempt in range(2):
        try:
            return await _scan_once(store, text_read, gate, nonce, device, event_id, scanned_at)
        except IntegrityError:
            # The same nonce committed by a concurrent request: its answer is read next time.
            continue
    return await _scan_once(store, text_read, gate, nonce, device, event_id, scanned_at)


async def _scan_once(store: Store, text_read: str, gate: str, nonce: str, device: str,
                     event_id: str | None, scanned_at: dt.datetime | None) -> ScanAnswer:
    async with store.write() as session:
        return await _scan_in(session, text_read, gate, nonce, device, event_id, scanned_at,
                              utcnow())


@dataclasses.dataclass(frozen=True, slots=True)
class OfflineScan:
    """One scan of an uploaded batch."""

    barcode: str
    gate: str
    nonce: str
    scanned_at: dt.datetime


async def scan_offline_batch(store: Store, scans: list[OfflineScan], gate_device: str, *,
                             event_id: str | None = None) -> list[ScanAnswer]:
    """Record a batch of offline scans in one transaction, each decided as ``scan_offline``
    would (in order, so a later scan sees the earlier ones). A nonce reused for another code
    refuses the whole batch (``NonceReused``: nothing recorded). If the batch meets a concurrent
    scan at a unique constraint, it is done again one scan at a time."""
    try:
        async with store.write() as session:
            now = utcnow()
            return [await _scan_in(session, scan.barcode, scan.gate, scan.nonce, gate_device,
                                   event_id, scan.scanned_at, now) for scan in scans]
    except IntegrityError:
        pass
    answers = []
    for scan in scans:
        answers.append(await scan_offline(store, scan.barcode, scan.gate, scan.nonce,
                                          gate_device, scan.scanned_at, event_id=event_id))
    return answers


async def _scan_in(session: AsyncSession, text_read: str, gate: str, nonce: str, device: str,
                   event_id: str | None, scanned_at: dt.datetime | None,
                   now: dt.datetime) -> ScanAnswer:
    """One scan, in the caller's transaction."""
    connection = await session.connection()
    scan = await _resolve(connection, text_read, gate, device, scanned_at or now,
                          offline=scanned_at is not None)
    prior = (await connection.execute(_PRIOR, {"device": device, "nonce": nonce})).first()
    if prior is not None:
        if prior.barcode != scan.recorded_as:
            raise NonceReused(nonce)
        return ScanAnswer.from_json(prior.answer)
    answer, ticket = await _decide(connection, scan, event_id)
    await connection.execute(_RECORD, {
        "device": device, "nonce": nonce, "barcode": scan.recorded_as, "gate": gate,
        "result": answer.result, "ticket_id": ticket[0] if ticket else None, "at": scan.at,
        "answer": answer.to_json(), "offline": scan.offline,
        "conflict": answer.conflict and answer.result != ScanResult.OK,
    })
    await audit(session, ActorKind.SYSTEM, None, f"gate_{answer.result.value}",
                order_id=ticket[1] if ticket else None,
                ticket_id=ticket[0] if ticket else None, now=now,
                result=answer.result.value, gate=gate, device=device,
                **_offline_details(scan, answer),
                **({} if ticket else {"barcode": scan.recorded_as}))
    if answer.result == ScanResult.OK and ticket is not None:
        await announce_scan(session, ticket_id=ticket[0], ticket_ref=answer.ticket_ref,
                            order_id=ticket[1], event_id=answer.event_id,
                            barcode=scan.barcode or scan.recorded_as, gate=gate, now=now)
    return answer


def _offline_details(scan: _Scan, answer: ScanAnswer) -> dict[str, Any]:
    if not scan.offline:
        return {}
    details: dict[str, Any] = {"offline": True, "scanned_at": scan.at.isoformat()}
    if answer.conflict:
        details.update(conflict=True, other_gate=answer.other_gate)
    return details


async def _resolve(connection: AsyncConnection, text_read: str, gate: str, device: str,
                   at: dt.datetime, *, offline: bool) -> _Scan:
    """The barcode a scanned text stands for: itself, or the one a genuine rotating code
    names (None if the code is made up, of no key we have, or names no barcode of ours)."""
    scan = _Scan(text_read, text_read, False, False, gate, device, at, offline)
    if not entry_codes.looks_rotating(text_read):
        return scan
    static = entry_codes.parse_static(text_read)
    if static is not None:
        return dataclasses.replace(scan, barcode=await _barcode_of_static(connection, static))
    unknown = dataclasses.replace(scan, barcode=None, rotating=True)
    code = entry_codes.parse(text_read)
    key = await entry_keys.key_of_code(connection, code.key_id, at) if code else None
    if code is None or key is None or not entry_codes.genuine(
            code, key.event_id, key.public_key, key.step_secret):
        return unknown
    barcode = await _barcode_of_token(connection, key.event_id, code.ticket_ref, code.token)
    if barcode is None:
        return unknown
    stale = not entry_codes.live(code, at.timestamp(), key.period_seconds)
    return dataclasses.replace(scan, barcode=barcode, rotating=True, stale=stale)


async def _barcode_of_static(connection: AsyncConnection,
                             code: entry_codes.StaticCode) -> str | None:
    """The barcode a static signed code names, if an event key of ours signed it."""
    key = await entry_keys.key_of_static_code(connection, code.key_id)
    if key is None or not entry_codes.static_genuine(code, key.event_id, key.public_key):
        return None
    return await _barcode_of_token(connection, key.event_id, code.ticket_ref, code.token)


async def _barcode_of_token(connection: AsyncConnection, event_id: str, ticket_ref: str,
                            token: str) -> str | None:
    codes = (await connection.execute(
        _BARCODES_OF_REF, {"event_id": event_id, "ref": ticket_ref})).scalars()
    return next((each for each in codes if entry_codes.token_of(each) == token), None)


async def barcode_of_code(store: Store, text_read: str) -> str | None:
    """The barcode a scanned text names (itself, or the one a genuine signed code names),
    whether or not it is valid now; None if it names none of ours. Scans nothing."""
    async with store.read_connection() as connection:
        scan = await _resolve(connection, text_read, "", "", utcnow(), offline=False)
    return scan.barcode


async def _decide(connection: AsyncConnection, scan: _Scan,
                  event_id: str | None) -> tuple[ScanAnswer, tuple[int, int] | None]:
    for _attempt in range(_ATTEMPTS):
        found = None
        if scan.barcode is not None:
            found = (await connection.execute(_LOOKUP, {"code": scan.barcode})).first()
        if found is None or (event_id is not None and found.event_id != event_id):
            return ScanAnswer(ScanResult.UNKNOWN, scan.text), None
        ticket = (found.id, found.order_id)
        if scan.stale or (found.entry_code == EntryCode.ROTATING and not scan.rotating):
            return ScanAnswer(ScanResult.STALE, scan.text, found.ref, found.event_id), ticket
        if found.voided_at is not None or not found.current:
            return ScanAnswer(ScanResult.VOID, scan.text, found.ref, found.event_id,
                              voided_at=found.voided_at), ticket
        if found.used_at is not None:
            return await _seen_before(connection, scan, found), ticket
        if await _enter(connection, found, scan.barcode, scan.at):
            return ScanAnswer(ScanResult.OK, scan.text, found.ref, found.event_id,
                              found.category, found.holder_name, scanned_at=scan.at,
                              gate=scan.gate), ticket
        # Changed meanwhile (another gate, a new holder, an invitation…): PostgreSQL re-read
        # the row once that change committed, so reading again sees it.
    raise RuntimeError(f"ticket {found.id} kept changing while it was scanned")


async def _seen_before(connection: AsyncConnection, scan: _Scan, found: Row) -> ScanAnswer:
    """A used ticket. Online: ``already_scanned``. Offline: a double entry if another device
    let it in, and if that entry was later than this one, this one is the entry."""
    first = (await connection.execute(_FIRST_ENTRY, {"ticket": found.id})).first()
    first_at = first.at if first else found.used_at
    first_gate = first.gate if first else None
    conflict = scan.offline and first is not None and first.device != scan.device
    if conflict and first.at > scan.at:
        await connection.execute(_STEP_DOWN, {"scan": first.id})
        await connection.execute(_ENTERED_EARLIER, {"ticket": found.id, "at": scan.at})
        return ScanAnswer(ScanResult.OK, scan.text, found.ref, found.event_id, found.category,
                          found.holder_name, scanned_at=scan.at, gate=scan.gate,
                          conflict=True, other_gate=first.gate, other_scanned_at=first.at)
    return ScanAnswer(ScanResult.ALREADY_SCANNED, scan.text, found.ref, found.event_id,
                      found.category, found.holder_name, scanned_at=first_at, gate=first_gate,
                      conflict=conflict, other_gate=first_gate if conflict else None,
                      other_scanned_at=first_at if conflict else None)


async def _enter(connection: AsyncConnection, found: Row, barcode: str,
                 now: dt.datetime) -> bool:
    """Mark the ticket used if it is still as ``found``; settle its invitation or listing."""
    params = {"ticket": found.id, "version": found.version, "code": barcode, "now": now}
    statement = _ENTER.get(found.state, _ENTER[None])
    if (await connection.execute(statement, params)).rowcount != 1:
        return False
    if found.state == TicketState.ON_RESALE:
        await connection.execute(_CANCEL_LISTING, {"ticket": found.id, "now": now})
    elif found.state == TicketState.PENDING:
        withdrawn = (await connection.execute(
            _WITHDRAW_INVITATION, {"ticket": found.id, "now": now})).scalars().all()
        for invitation_id in withdrawn:
            await connection.execute(_REVOKE_LINKS, {"invitation": invitation_id, "now": now})
    return True
