"""The store's invariants, checked on the whole database: what must hold after any sequence of
actions, crashes and races. Used by the property, race and crash tests."""

from __future__ import annotations

from collections import Counter, defaultdict

from sqlalchemy import select

from storage.db.store import Store
from storage.keys import email_key, name_key
from storage.models import (
    AuditEntry,
    Barcode,
    Invitation,
    InvitationState,
    ListingState,
    ResaleListing,
    Ticket,
    TicketState,
)

# Actions that give a ticket a new barcode (and void the old one).
REISSUING = {"claimed_for_self", "invitation_accepted", "holder_renamed", "taken_back"}
FINISHING = {
    InvitationState.ACCEPTED: "invitation_accepted",
    InvitationState.DECLINED: "invitation_declined",
    InvitationState.REVOKED: "invitation_revoked",
    InvitationState.EXPIRED: "invitation_expired",
}
LISTING_END = {ListingState.CANCELLED: "resale_cancelled", ListingState.SOLD: "resale_sold"}
GONE = (TicketState.SOLD, TicketState.EXCHANGED)


class Violations(AssertionError):
    pass


async def check_invariants(store: Store) -> int:
    """Raise ``Violations`` naming every broken rule; returns how many facts were checked."""
    async with store.read() as session:
        tickets = list(await session.scalars(select(Ticket).order_by(Ticket.id)))
        barcodes = list(await session.scalars(select(Barcode)))
        invitations = list(await session.scalars(select(Invitation)))
        listings = list(await session.scalars(select(ResaleListing)))
        audits = list(await session.scalars(select(AuditEntry)))
    problems: list[str] = []
    checked = 0

    def expect(condition: bool, problem: str) -> None:
        nonlocal checked
        checked += 1
        if not condition:
            problems.append(problem)

    codes_of: dict[int, list[Barcode]] = defaultdict(list)
    for code in barcodes:
        codes_of[code.ticket_id].append(code)
    pending_of: dict[int, list[Invitation]] = defaultdict(list)
    for invitation in invitations:
        if invitation.state == InvitationState.PENDING:
            pending_of[invitation.ticket_id].append(invitation)
    live_listing_of: dict[int, list[ResaleListing]] = defaultdict(list)
    sold_listing_of: dict[int, list[ResaleListing]] = defaultdict(list)
    for listing in listings:
        if listing.state == ListingState.LISTED:
            live_listing_of[listing.ticket_id].append(listing)
        elif listing.state == ListingState.SOLD:
            sold_listing_of[listing.ticket_id].append(listing)
    actions_of: dict[int, Counter] = defaultdict(Counter)
    by_detail: dict[tuple[str, str, int], int] = Counter()
    for entry in audits:
        if entry.ticket_id is not None:
            actions_of[entry.ticket_id][entry.action] += 1
        for key in ("invitation_id", "listing_id"):
            if isinstance(entry.details, dict) and key in entry.details:
                by_detail[(entry.action, key, entry.details[key])] += 1

    names: Counter = Counter()
    emails: Counter = Counter()
    for ticket in tickets:
        label = f"ticket {ticket.ref} ({ticket.state.value})"
        pending = pending_of.get(ticket.id, [])
        live = live_listing_of.get(ticket.id, [])
        expect(len(pending) == (1 if ticket.state == TicketState.PENDING else 0),
               f"{label} has {len(pending)} pending invitations")
        expect(len(live) == (1 if ticket.state == TicketState.ON_RESALE else 0),
               f"{label} has {len(live)} live listings")
        if ticket.state in (TicketState.TO_ASSIGN, *GONE):
            expect(ticket.holder_name is None and ticket.name_key is None
                   and ticket.email_key is None and ticket.holder_email is None,
                   f"{label} still names a holder")
        if ticket.state == TicketState.PENDING:
            expect(ticket.holder_name is None, f"{label} names a holder before the claim")
            expect(bool(pending) and ticket.email_key == email_key(pending[0].email),
                   f"{label} is not reserved for its invitation's address")
        if ticket.state == TicketState.COMPLETED:
            expect(ticket.holder_name is not None
                   and ticket.name_key == name_key(ticket.holder_name),
                   f"{label} has no holder, or a wrong name key")
        if ticket.state == TicketState.SOLD:
            expect(len(sold_listing_of.get(ticket.id, [])) == 1,
                   f"{label} has no sold listing")
        if ticket.state == TicketState.EXCHANGED:
            expect(actions_of[ticket.id]["exchanged"] == 1, f"{label} has no exchange entry")
        if ticket.name_key is not None:
            names[(ticket.event_id, ticket.name_key)] += 1
        if ticket.email_key is not None:
            expect(ticket.email_key == email_key(ticket.holder_email or ""),
                   f"{label} has a wrong e-mail key")
            emails[(ticket.event_id, ticket.email_key)] += 1

        # Barcodes: a live ticket has exactly its current code valid; a gone one none.
        codes = codes_of.get(ticket.id, [])
        valid = [c.code for c in codes if c.voided_at is None]
        if ticket.state in GONE:
            expect(valid == [], f"{label} left a valid barcode")
        else:
            expect(valid == [ticket.barcode], f"{label}: valid codes differ from its barcode")
        expect(ticket.barcode in {c.code for c in codes},
               f"{label}: its barcode was never issued to it")
        reissues = sum(actions_of[ticket.id][action] for action in REISSUING)
        expect(len(codes) == 1 + reissues,
               f"{label}: {len(codes)} barcodes but {reissues} recorded holder changes")

    for (event, _key), count in names.items():
        expect(count == 1, f"a name is on {count} tickets of event {event}")
    for (event, _key), count in emails.items():
        expect(count == 1, f"an e-mail is used by {count} tickets of event {event}")
    current = Counter(ticket.barcode for ticket in tickets)
    expect(all(n == 1 for n in current.values()), "two tickets share a barcode")

    # Every change has its audit entry.
    for invitation in invitations:
        key = ("invitation_id", invitation.id)
        expect(by_detail[("invited", *key)] == 1,
               f"invitation {invitation.id} has no single 'invited' entry")
        if invitation.state in FINISHING:
            action = FINISHING[invitation.state]
            expect(by_detail[(action, *key)] == 1,
                   f"invitation {invitation.id} ({invitation.state.value}) has no '{action}'")
    for listing in listings:
        key = ("listing_id", listing.id)
        expect(by_detail[("listed_for_resale", *key)] == 1,
               f"listing {listing.id} has no single listing entry")
        if listing.state in LISTING_END:
            action = LISTING_END[listing.state]
            expect(by_detail[(action, *key)] == 1,
                   f"listing {listing.id} ({listing.state.value}) has no '{action}'")
    if problems:
        raise Violations("\n".join(problems))
    return checked
