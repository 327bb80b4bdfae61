"""A stateful property test of the service layer: Hypothesis drives buyers and friends through
random sequences of import, claim, invite, open, accept, decline, revoke, resend, expire, list,
change price, cancel, sale, exchange, rename and take back. After every step the store's
invariants hold (tests/invariants.py), a refused action changed nothing, void barcodes stay
void, and the audit history holds exactly one entry per action that took effect.

Each example runs on a fresh store and an event loop of its own.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import tempfile
from collections import Counter
from decimal import Decimal
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from sqlalchemy import func, select

from storage import services, tokens
from storage.db.store import Store, utcnow
from storage.errors import Refusal
from storage.models import (
    AuditEntry,
    Barcode,
    Base,
    Event,
    Invitation,
    OutboxMail,
    ResaleListing,
    Ticket,
    TicketState,
)
from storage.services import exchange, resale
from storage.services.importing.importer import import_document
from tests.conftest import (
    ON_POSTGRES,
    SAMPLE_EVENTS,
    TEST_DATABASE_URL,
    ensure_postgres_schema,
)
from tests.invariants import check_invariants

BUYERS = (1001, 1002)
FRIENDS = (2001, 2002, 2003)
NAMES = ("Élodie Dupont", "elodie  DUPONT", "Alex Martin", "ALEX martin", "Zoé Lévy",
         "Camille Martin", "x")
EMAILS = ("alex@example.org", "ALEX@example.org", "sam@example.org", "zoe@example.org", "bad@")
PRICES = (Decimal("0"), Decimal("10.00"), Decimal("50"), Decimal("89.00"), Decimal("89.01"),
          Decimal("12.345"))
TO_ASSIGN, PENDING, COMPLETED, ON_RESALE = (
    TicketState.TO_ASSIGN, TicketState.PENDING, TicketState.COMPLETED, TicketState.ON_RESALE)
IMPORT_ACTIONS = {"event_imported", "event_updated", "order_imported", "tickets_imported",
                  "order_link_created"}


def document() -> dict:
    events = copy.deepcopy(SAMPLE_EVENTS)
    events[1]["capacity"] = 2  # the Sunday has two places for exchanges
    return {
        "events": events,
        "orders": [
            {"number": f"SM-{n}", "buyer": {"name": name, "email": f"buyer{n}@example.org",
                                            "language": "en"},
             "tickets": [{"ref": f"T-SM-{n}-{k}", "event": "fest-sat",
                          "category": "Pass samedi", "price": "89.00"} for k in (1, 2, 3)]}
            for n, name in enumerate(("Camille Martin", "Sam Leroy"))
        ],
    }


async def open_store() -> Store:
    if ON_POSTGRES:
        store = Store(TEST_DATABASE_URL, secret="test-secret",
                      **await ensure_postgres_schema(TEST_DATABASE_URL))
    else:
        folder = Path(tempfile.mkdtemp(prefix="ticketbot-machine-"))
        store = Store(f"sqlite+aiosqlite:///{folder / 'store.db'}", secret="test-secret")
    async with store.engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    return store


async def snapshot(store: Store) -> tuple:
    """Everything a refused action must leave as it was."""
    async with store.read() as session:
        tickets = (await session.execute(
            select(Ticket.id, Ticket.state, Ticket.version, Ticket.barcode, Ticket.name_key,
                   Ticket.email_key).order_by(Ticket.id))).all()
        invitations = (await session.execute(
            select(Invitation.id, Invitation.state).order_by(Invitation.id))).all()
        listings = (await session.execute(
            select(ResaleListing.id, ResaleListing.state, ResaleListing.price)
            .order_by(ResaleListing.id))).all()
        counts = [await session.scalar(select(func.count()).select_from(model))
                  for model in (AuditEntry, Barcode, OutboxMail)]
        capacity = await session.scalar(select(Event.exchange_capacity)
                                         .where(Event.id == "fest-sun"))
    return tuple(tickets), tuple(invitations), tuple(listings), tuple(counts), capacity


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.store = self.run(open_store())
        self.expected: Counter[str] = Counter()
        self.voided: set[str] = set()
        self.refusals: Counter[str] = Counter()
        self.order_of: dict[int, int] = {}
        self.states: Counter[TicketState] = Counter()

    def run(self, coroutine):
        return self.loop.run_until_complete(coroutine)

    def teardown(self) -> None:
        self.run(self.store.close())
        self.loop.close()

    # --- helpers --------------------------------------------------------------------------

    def ticket(self, index: int, *, buyer: int | None = None,
               states: tuple[TicketState, ...] = ()) -> int:
        """Mostly a ticket the action can apply to (of the buyer's order, in one of
        ``states``); sometimes any ticket at all, to try the refusals too."""
        async def rows() -> list:
            async with self.store.read() as session:
                return (await session.execute(
                    select(Ticket.id, Ticket.order_id, Ticket.state).order_by(Ticket.id))).all()
        every = self.run(rows())
        fitting = [row for row in every
                   if (buyer is None or row.order_id == self.order_of.get(buyer))
                   and (not states or row.state in states)]
        pool = fitting if fitting and index < 17 else every
        return pool[index % len(pool)].id

    def latest(self, model, ticket_id: int) -> int:
        async def find() -> int:
            async with self.store.read() as session:
                found = await session.scalar(select(func.max(model.id))
                                             .where(model.ticket_id == ticket_id))
            return found or 10**6  # no such row: the service must say so
        return self.run(find())

    def attempt(self, action, *audited: str, times: int = 1) -> None:
        """Run a use case: on success expect its audit entries; on refusal, no change."""
        before = self.run(snapshot(self.store))
        try:
            result = self.run(action)
        except Refusal as refusal:
            self.refusals[refusal.code] += 1
            assert self.run(snapshot(self.store)) == before, f"refused {refusal.code} changed"
            return
        for action_name in audited:
            self.expected[action_name] += result if times is None else times
        self.count_states()

    def count_states(self) -> None:
        """Tickets by state, so that rules wait until there is something to act on."""
        async def count() -> Counter[TicketState]:
            async with self.store.read() as session:
                rows = await session.execute(
                    select(Ticket.state, func.count()).group_by(Ticket.state))
                return Counter(dict(rows.all()))
        self.states = self.run(count())

    def some(*states: TicketState):
        return precondition(lambda self: any(self.states[state] for state in states))

    # --- rules ----------------------------------------------------------------------------

    @initialize()
    def import_orders(self) -> None:
        self.run(import_document(self.store, document()))
        for buyer, number in zip(BUYERS, ("SM-0", "SM-1"), strict=True):
            token = self.run(services.create_order_link(self.store, number))
            self.order_of[buyer] = self.run(services.open_link(self.store, buyer, token)).order_id
            self.expected["order_opened"] += 1
        self.count_states()

    @rule()
    def import_again(self) -> None:
        self.run(import_document(self.store, document()))

    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20), name=st.sampled_from(NAMES))
    def claim(self, buyer, index, name) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(TO_ASSIGN,))
        self.attempt(services.claim_for_myself(self.store, buyer, ticket_id, name),
                     "claimed_for_self")

    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20),
          email=st.sampled_from(EMAILS))
    def invite(self, buyer, index, email) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(TO_ASSIGN,))
        self.attempt(services.invite_friend(self.store, buyer, ticket_id, email), "invited")

    @some(PENDING)
    @rule(friend=st.sampled_from(FRIENDS + BUYERS), index=st.integers(0, 20))
    def open_claim_link(self, friend, index) -> None:
        self.open_claim(friend, index)

    def open_claim(self, friend: int, index: int) -> int:
        """The friend opens the claim link of a (mostly pending) ticket's latest invitation."""
        invitation_id = self.latest(Invitation, self.ticket(index, states=(PENDING,)))
        token = tokens.claim_token(self.run(self.store.secret()), invitation_id)
        if invitation_id < 10**6:
            self.attempt(services.open_link(self.store, friend, token))
        return invitation_id

    @some(PENDING)
    @rule(friend=st.sampled_from(FRIENDS + BUYERS), index=st.integers(0, 20),
          name=st.sampled_from(NAMES))
    def accept(self, friend, index, name) -> None:
        invitation_id = self.open_claim(friend, index)
        self.attempt(services.accept_invitation(self.store, friend, invitation_id, name),
                     "invitation_accepted")

    @some(PENDING)
    @rule(friend=st.sampled_from(FRIENDS), index=st.integers(0, 20))
    def decline(self, friend, index) -> None:
        invitation_id = self.open_claim(friend, index)
        self.attempt(services.decline_invitation(self.store, friend, invitation_id),
                     "invitation_declined")

    @some(PENDING)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20))
    def revoke(self, buyer, index) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(PENDING,))
        self.attempt(services.revoke_invitation(self.store, buyer, ticket_id),
                     "invitation_revoked")

    @some(PENDING)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20))
    def resend(self, buyer, index) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(PENDING,))
        self.attempt(services.resend_invitation(self.store, buyer, ticket_id),
                     "invitation_resent")

    @some(PENDING)
    @rule()
    def expire(self) -> None:
        later = utcnow() + self.store.claim_link_ttl + dt.timedelta(days=1)
        self.attempt(services.expire_invitations(self.store, now=later), "invitation_expired",
                     times=None)

    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20),
          price=st.sampled_from(PRICES))
    def list_for_resale(self, buyer, index, price) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(TO_ASSIGN, COMPLETED))
        self.attempt(resale.list_for_resale(self.store, buyer, ticket_id, price),
                     "listed_for_resale")

    @some(ON_RESALE)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20),
          price=st.sampled_from(PRICES))
    def change_price(self, buyer, index, price) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(ON_RESALE,))
        self.attempt(resale.change_price(self.store, buyer, ticket_id, price),
                     "resale_price_changed")

    @some(ON_RESALE)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20))
    def cancel_sale(self, buyer, index) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(ON_RESALE,))
        self.attempt(resale.cancel_sale(self.store, buyer, ticket_id), "resale_cancelled")

    @some(ON_RESALE)
    @rule(index=st.integers(0, 20), price=st.sampled_from((None, *PRICES)))
    def market_sells(self, index, price) -> None:
        listing_id = self.latest(ResaleListing, self.ticket(index, states=(ON_RESALE,)))
        self.attempt(resale.complete_sale(self.store, listing_id, price=price), "resale_sold")

    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20),
          session=st.sampled_from(("fest-sun", "fest-sat")))
    def exchange(self, buyer, index, session) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(TO_ASSIGN, COMPLETED))
        self.attempt(exchange.exchange_ticket(self.store, buyer, ticket_id, session),
                     "exchanged")

    @some(COMPLETED)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20), name=st.sampled_from(NAMES))
    def rename(self, buyer, index, name) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(COMPLETED,))
        self.attempt(services.rename_holder(self.store, buyer, ticket_id, name),
                     "holder_renamed")

    @some(COMPLETED)
    @rule(buyer=st.sampled_from(BUYERS), index=st.integers(0, 20))
    def take_back(self, buyer, index) -> None:
        ticket_id = self.ticket(index, buyer=buyer, states=(COMPLETED,))
        self.attempt(services.take_back(self.store, buyer, ticket_id), "taken_back")

    # --- invariants -----------------------------------------------------------------------

    @invariant()
    def store_invariants_hold(self) -> None:
        self.run(check_invariants(self.store))

    @invariant()
    def each_action_that_took_effect_is_audited_once(self) -> None:
        async def actions() -> Counter[str]:
            async with self.store.read() as session:
                rows = await session.execute(
                    select(AuditEntry.action, func.count()).group_by(AuditEntry.action))
                return Counter({action: n for action, n in rows
                                if action not in IMPORT_ACTIONS})
        assert self.run(actions()) == +self.expected

    @invariant()
    def void_barcodes_stay_void(self) -> None:
        async def voided() -> set[str]:
            async with self.store.read() as session:
                return set(await session.scalars(
                    select(Barcode.code).where(Barcode.voided_at.is_not(None))))
        now_voided = self.run(voided())
        assert self.voided <= now_voided
        self.voided = now_voided


StoreMachine.TestCase.settings = settings(
    max_examples=25, stateful_step_count=20, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestServiceLayerUnderRandomSequences = StoreMachine.TestCase
