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
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from storage.db.store import Store, utcnow
from storage.models import (
    ActorKind,
    Barcode,
    GateScan,
    Invitation,
    InvitationState,
    LinkToken,
    ListingState,
    ResaleListing,
    ScanResult,
    Ticket,
    TicketState,
)
from storage.services import audit
from storage.webhook_outbox import announce_scan

MAX_BARCODE = 64
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

    def to_json(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        for name in ("scanned_at", "voided_at"):
            if values[name] is not None:
                values[name] = values[name].isoformat()
        values["result"] = self.result.value
        return values

    @classmethod
    def from_json(cls, values: dict[str, Any]) -> ScanAnswer:
        values = dict(values)
        values["result"] = ScanResult(values["result"])
        for name in ("scanned_at", "voided_at"):
            if values.get(name) is not None:
                values[name] = dt.datetime.fromisoformat(values[name])
        return cls(**values)


_scans, _tickets, _barcodes = GateScan.__table__, Ticket.__table__, Barcode.__table__
_invitations, _links = Invitation.__table__, LinkToken.__table__
_listings = ResaleListing.__table__
_ATTEMPTS = 5

_PRIOR = select(_scans.c.barcode, _scans.c.answer).where(
    _scans.c.device == bindparam("device"), _scans.c.nonce == bindparam("nonce"))
_LOOKUP = (
    select(_barcodes.c.voided_at, _tickets.c.id, _tickets.c.order_id, _tickets.c.ref,
           _tickets.c.event_id, _tickets.c.category, _tickets.c.holder_name,
           _tickets.c.state, _tickets.c.version, _tickets.c.used_at,
           (_tickets.c.barcode == _barcodes.c.code).label("current"))
    .join(_tickets, _tickets.c.id == _barcodes.c.ticket_id)
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
               _listings.c.state == ListingState.LISTED.value)
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
           _listings.c.state == ListingState.LISTED.value)
    .values(state=ListingState.CANCELLED.value, finished_at=bindparam("now"),
            updated_at=bindparam("now"))
)
# Written out, not bound: SQLite uses the partial index only for its own literal condition.
_FIRST_ENTRY = select(_scans.c.at, _scans.c.gate).where(
    _scans.c.ticket_id == bindparam("ticket"), text("gate_scans.result = 'ok'"))
_RECORD = insert(_scans)


async def scan_barcode(store: Store, barcode: str, gate: str, nonce: str, gate_device: str, *,
                       event_id: str | None = None) -> ScanAnswer:
    """Scan ``barcode`` at ``gate`` (a name the scanner gives) from ``gate_device``; the same
    ``nonce`` from the same device always gets the first answer again. With ``event_id``, a
    barcode of another event is ``unknown`` here (and not used up)."""
    for _attempt in range(2):
        try:
            return await _scan_once(store, barcode, gate, nonce, gate_device, event_id)
        except IntegrityError:
            # The same nonce committed by a concurrent request: its answer is read next time.
            continue
    return await _scan_once(store, barcode, gate, nonce, gate_device, event_id)


async def _scan_once(store: Store, barcode: str, gate: str, nonce: str, device: str,
                     event_id: str | None) -> ScanAnswer:
    now = utcnow()
    async with store.write() as session:
        connection = await session.connection()
        prior = (await connection.execute(_PRIOR, {"device": device, "nonce": nonce})).first()
        if prior is not None:
            if prior.barcode != barcode:
                raise NonceReused(nonce)
            return ScanAnswer.from_json(prior.answer)
        answer, ticket = await _decide(connection, barcode, gate, event_id, now)
        await connection.execute(_RECORD, {
            "device": device, "nonce": nonce, "barcode": barcode, "gate": gate,
            "result": answer.result, "ticket_id": ticket[0] if ticket else None, "at": now,
            "answer": answer.to_json(),
        })
        await audit(session, ActorKind.SYSTEM, None, f"gate_{answer.result.value}",
                    order_id=ticket[1] if ticket else None,
                    ticket_id=ticket[0] if ticket else None, now=now,
                    result=answer.result.value, gate=gate, device=device,
                    **({} if ticket else {"barcode": barcode}))
        if answer.result == ScanResult.OK and ticket is not None:
            await announce_scan(session, ticket_id=ticket[0], ticket_ref=answer.ticket_ref,
                                order_id=ticket[1],
                                event_id=answer.event_id, barcode=barcode, gate=gate, now=now)
        return answer


async def _decide(connection: AsyncConnection, barcode: str, gate: str, event_id: str | None,
                  now: dt.datetime) -> tuple[ScanAnswer, tuple[int, int] | None]:
    for _attempt in range(_ATTEMPTS):
        found = (await connection.execute(_LOOKUP, {"code": barcode})).first()
        if found is None or (event_id is not None and found.event_id != event_id):
            return ScanAnswer(ScanResult.UNKNOWN, barcode), None
        ticket = (found.id, found.order_id)
        if found.voided_at is not None or not found.current:
            return ScanAnswer(ScanResult.VOID, barcode, found.ref, found.event_id,
                              voided_at=found.voided_at), ticket
        if found.used_at is not None:
            first = (await connection.execute(_FIRST_ENTRY, {"ticket": found.id})).first()
            return ScanAnswer(ScanResult.ALREADY_SCANNED, barcode, found.ref, found.event_id,
                              found.category, found.holder_name,
                              scanned_at=first.at if first else found.used_at,
                              gate=first.gate if first else None), ticket
        if await _enter(connection, found, barcode, now):
            return ScanAnswer(ScanResult.OK, barcode, found.ref, found.event_id,
                              found.category, found.holder_name, scanned_at=now,
                              gate=gate), ticket
        # Changed meanwhile (another gate, a new holder, an invitation…): PostgreSQL re-read
        # the row once that change committed, so reading again sees it.
    raise RuntimeError(f"ticket {found.id} kept changing while it was scanned")


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
