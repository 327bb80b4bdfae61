"""Scanning a barcode at the gate: the one rule behind the gate API and the staff's gate view.

What is promised: a valid barcode lets exactly one person in. The first scan of it answers
``ok`` and marks its ticket *used* with a conditional ``UPDATE … WHERE used_at IS NULL AND
barcode = …``: of two gates scanning it at the same moment, the database lets one update the
row and the other finds it used (``already_scanned``, with when and at which gate). A partial
unique index (one ``ok`` scan per ticket) backs that up. An old barcode of a ticket that
changed holder (or left the order) answers ``void``; a barcode never issued, ``unknown``.

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

from sqlalchemy import bindparam, case, insert, select, text, update
from sqlalchemy.exc import IntegrityError

from storage.database import Store, utcnow
from storage.models import (
    ActorKind,
    Barcode,
    GateScan,
    Invitation,
    InvitationState,
    LinkToken,
    ScanResult,
    Ticket,
    TicketState,
)
from storage.services import audit

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
    category: str | None = None
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

_PRIOR = select(_scans.c.barcode, _scans.c.answer).where(
    _scans.c.device == bindparam("device"), _scans.c.nonce == bindparam("nonce"))
_LOOKUP = (
    select(_barcodes.c.voided_at, _tickets.c.id, _tickets.c.order_id, _tickets.c.ref,
           _tickets.c.event_id, _tickets.c.category, _tickets.c.holder_name)
    .join(_tickets, _tickets.c.id == _barcodes.c.ticket_id)
    .where(_barcodes.c.code == bindparam("code"))
)
_PENDING = _tickets.c.state == TicketState.PENDING.value
# The first entry. A ticket sent to a friend and not yet claimed is entered with the buyer's
# barcode: its invitation is withdrawn below, since the friend can no longer claim it.
_ENTER = (
    update(_tickets)
    .where(_tickets.c.id == bindparam("ticket"), _tickets.c.barcode == bindparam("code"),
           _tickets.c.used_at.is_(None))
    .values(used_at=bindparam("now"), updated_at=bindparam("now"),
            version=_tickets.c.version + 1,
            state=case((_PENDING, TicketState.TO_ASSIGN.value), else_=_tickets.c.state),
            holder_email=case((_PENDING, None), else_=_tickets.c.holder_email),
            email_key=case((_PENDING, None), else_=_tickets.c.email_key))
)
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
# Written out, not bound: SQLite uses the partial index only for its own literal condition.
_FIRST_ENTRY = select(_scans.c.at, _scans.c.gate).where(
    _scans.c.ticket_id == bindparam("ticket"), text("gate_scans.result = 'ok'"))
_CURRENT = select(_tickets.c.barcode).where(_tickets.c.id == bindparam("ticket"))
_RECORD = insert(_scans)


async def scan_barcode(store: Store, barcode: str, gate: str, nonce: str,
                       gate_device: str) -> ScanAnswer:
    """Scan ``barcode`` at ``gate`` (a name the scanner gives) from ``gate_device``; the same
    ``nonce`` from the same device always gets the first answer again."""
    for _attempt in range(2):
        try:
            return await _scan_once(store, barcode, gate, nonce, gate_device)
        except IntegrityError:
            # The same nonce committed by a concurrent request: its answer is read next time.
            continue
    return await _scan_once(store, barcode, gate, nonce, gate_device)


async def _scan_once(store: Store, barcode: str, gate: str, nonce: str,
                     device: str) -> ScanAnswer:
    now = utcnow()
    async with store.write() as session:
        connection = await session.connection()
        prior = (await connection.execute(_PRIOR, {"device": device, "nonce": nonce})).first()
        if prior is not None:
            if prior.barcode != barcode:
                raise NonceReused(nonce)
            return ScanAnswer.from_json(prior.answer)
        answer, ticket = await _decide(connection, barcode, gate, now)
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
        return answer


async def _decide(connection, barcode: str, gate: str,
                  now: dt.datetime) -> tuple[ScanAnswer, tuple[int, int] | None]:
    found = (await connection.execute(_LOOKUP, {"code": barcode})).first()
    if found is None:
        return ScanAnswer(ScanResult.UNKNOWN, barcode), None
    ticket = (found.id, found.order_id)
    if found.voided_at is not None:
        return ScanAnswer(ScanResult.VOID, barcode, found.ref, found.event_id,
                          voided_at=found.voided_at), ticket
    entered = await connection.execute(_ENTER, {"ticket": found.id, "code": barcode,
                                                "now": now})
    if entered.rowcount == 1:
        withdrawn = (await connection.execute(
            _WITHDRAW_INVITATION, {"ticket": found.id, "now": now})).scalars().all()
        for invitation_id in withdrawn:
            await connection.execute(_REVOKE_LINKS, {"invitation": invitation_id, "now": now})
        return ScanAnswer(ScanResult.OK, barcode, found.ref, found.event_id, found.category,
                          found.holder_name, scanned_at=now, gate=gate), ticket
    # Someone was first: another gate scanned it, or the holder changed meanwhile. Both are
    # committed (PostgreSQL re-read the row after waiting for them), so a fresh read sees them.
    current = (await connection.execute(_CURRENT, {"ticket": found.id})).scalar()
    if current != barcode:
        voided_at = (await connection.execute(
            select(_barcodes.c.voided_at).where(_barcodes.c.code == barcode))).scalar()
        return ScanAnswer(ScanResult.VOID, barcode, found.ref, found.event_id,
                          voided_at=voided_at), ticket
    first = (await connection.execute(_FIRST_ENTRY, {"ticket": found.id})).first()
    return ScanAnswer(ScanResult.ALREADY_SCANNED, barcode, found.ref, found.event_id,
                      found.category, found.holder_name,
                      scanned_at=first.at if first else None,
                      gate=first.gate if first else None), ticket
