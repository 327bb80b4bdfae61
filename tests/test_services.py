"""The rules of assigning tickets, against a real store (SQLite file, or PostgreSQL in CI)."""

from __future__ import annotations

import asyncio
import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from storage import chat_state, services
from storage.errors import Refusal
from storage.models import (
    AuditEntry,
    Barcode,
    ChatNotification,
    Invitation,
    InvitationState,
    OutboxMail,
    Ticket,
    TicketState,
)
from storage.services import resale
from tests.factories import make_event, make_order

BUYER = 1001
FRIEND = 2002
STRANGER = 3003


@pytest.fixture
async def order(store):
    await make_event(store)
    return await make_order(store, managers=(BUYER,))


async def ticket_row(store, ticket_id: int) -> Ticket:
    async with store.read() as session:
        return await session.get(Ticket, ticket_id)


async def count(store, model, *where) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(model).where(*where))


async def test_claim_for_myself_puts_name_and_new_barcode(store, order):
    _, (ticket_id, *_) = order
    before = await ticket_row(store, ticket_id)
    holder = await services.claim_for_myself(store, BUYER, ticket_id, "  Camille   Martin ")
    after = await ticket_row(store, ticket_id)
    assert holder == "Camille Martin"
    assert after.state == TicketState.COMPLETED and after.holder_name == "Camille Martin"
    assert after.barcode != before.barcode
    async with store.read() as session:
        old = await session.get(Barcode, before.barcode)
    assert old.voided_at is not None
    assert await count(store, AuditEntry, AuditEntry.action == "claimed_for_self") == 1


async def test_same_name_differing_in_accents_case_and_spaces_is_refused(store, order):
    _, (first, second, _) = order
    await services.claim_for_myself(store, BUYER, first, "Élodie Dupont")
    with pytest.raises(Refusal) as refused:
        await services.claim_for_myself(store, BUYER, second, "  elodie   DUPONT")
    assert refused.value.code == "name_taken"
    assert (await ticket_row(store, second)).state == TicketState.TO_ASSIGN


async def test_email_used_once_per_event_case_insensitively(store, order):
    _, (first, second, _) = order
    await services.invite_friend(store, BUYER, first, "Alex@Example.org")
    with pytest.raises(Refusal) as refused:
        await services.invite_friend(store, BUYER, second, "alex@EXAMPLE.org")
    assert refused.value.code == "email_taken"
    assert await count(store, Invitation) == 1
    assert await count(store, OutboxMail) == 1


async def test_invalid_email_and_name_change_nothing(store, order):
    _, (ticket_id, *_) = order
    for bad in ("not-an-email", "a@", "x" * 300 + "@example.org", ""):
        with pytest.raises(Refusal) as refused:
            await services.invite_friend(store, BUYER, ticket_id, bad)
        assert refused.value.code == "email_invalid"
    for bad in ("", "1234", "Bob\u202eevil", "Bell\x07Name", "x" * 101):
        with pytest.raises(Refusal) as refused:
            await services.claim_for_myself(store, BUYER, ticket_id, bad)
        assert refused.value.code == "name_invalid"
    assert (await ticket_row(store, ticket_id)).state == TicketState.TO_ASSIGN
    assert await count(store, AuditEntry) == 0


async def test_stranger_cannot_touch_a_ticket(store, order):
    _, (ticket_id, *_) = order
    with pytest.raises(Refusal) as refused:
        await services.claim_for_myself(store, STRANGER, ticket_id, "Eve Intruder")
    assert refused.value.code == "not_found"
    with pytest.raises(Refusal):
        await services.ticket_details(store, STRANGER, ticket_id)


async def test_invitation_accepted_once_and_buyer_told(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    opened = await services.open_link(store, FRIEND, invite.claim_token)
    assert opened.claim and opened.claim.inviter_name == "Camille Martin"
    assert await services.accept_invitation(store, FRIEND, invite.invitation_id, "Alex Durand")
    ticket = await ticket_row(store, ticket_id)
    assert ticket.state == TicketState.COMPLETED and ticket.holder_telegram_id == FRIEND
    with pytest.raises(Refusal) as again:
        await services.open_link(store, FRIEND, invite.claim_token)
    assert again.value.code == "link_used"
    notes = await count(store, ChatNotification, ChatNotification.telegram_id == BUYER)
    assert notes == 1


async def test_accept_needs_the_link(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    with pytest.raises(Refusal) as refused:
        await services.accept_invitation(store, STRANGER, invite.invitation_id, "Eve Intruder")
    assert refused.value.code == "not_found"


async def test_decline_and_revoke_return_the_ticket(store, order):
    _, (first, second, _) = order
    invite = await services.invite_friend(store, BUYER, first, "alex@example.org")
    await services.open_link(store, FRIEND, invite.claim_token)
    await services.decline_invitation(store, FRIEND, invite.invitation_id)
    assert (await ticket_row(store, first)).state == TicketState.TO_ASSIGN
    # The address is free again once the invitation is over.
    invite2 = await services.invite_friend(store, BUYER, second, "alex@example.org")
    assert await services.revoke_invitation(store, BUYER, second) == "alex@example.org"
    assert (await ticket_row(store, second)).state == TicketState.TO_ASSIGN
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, FRIEND, invite2.claim_token)
    assert refused.value.code == "link_revoked"


async def test_expired_invitation_returns_to_buyer_who_is_told(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    later = services.utcnow() + dt.timedelta(days=15)
    assert await services.expire_invitations(store, now=later) == 1
    assert (await ticket_row(store, ticket_id)).state == TicketState.TO_ASSIGN
    assert await count(store, Invitation, Invitation.state == InvitationState.EXPIRED) == 1
    assert await count(store, ChatNotification, ChatNotification.kind == "invitation_expired")
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, FRIEND, invite.claim_token)
    assert refused.value.code == "link_expired"


async def test_a_declined_claim_link_names_who_sent_it(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    opened = await services.open_link(store, FRIEND, invite.claim_token)
    await services.decline_invitation(store, FRIEND, opened.claim.invitation_id)
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, FRIEND, invite.claim_token)
    assert refused.value.code == "link_declined"
    assert refused.value.params["sender"] == opened.claim.inviter_name != ""


async def test_expired_link_is_refused_before_the_sweeper_runs(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    async with store.write() as session:
        await session.execute(update(Invitation).values(
            expires_at=services.utcnow() - dt.timedelta(seconds=1)))
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, FRIEND, invite.claim_token)
    assert refused.value.code == "link_expired"


async def test_order_link_grants_access_and_can_be_revoked(store, order):
    order_id, _ = order
    async with store.read() as session:
        from storage.models import Order
        number = await session.scalar(select(Order.number).where(Order.id == order_id))
    token = await services.create_order_link(store, number)
    assert 32 <= len(token) <= 64
    assert (await services.open_link(store, STRANGER, token)).order_id == order_id
    await services.order_overview(store, STRANGER, order_id)
    await services.revoke_order_links(store, number)
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, FRIEND, token)
    assert refused.value.code == "link_revoked"


async def test_a_completed_step_ends_with_its_change_and_a_refused_one_stays(store, order):
    _, (first, second, *_) = order
    chat = BUYER
    await chat_state.set_step(store, chat, "claim_name", ticket_id=first)
    await services.claim_for_myself(store, BUYER, first, "Camille Martin", chat_id=chat)
    assert await chat_state.get_step(store, chat) is None
    await chat_state.set_step(store, chat, "claim_name", ticket_id=second)
    with pytest.raises(Refusal):  # the same name twice for one event
        await services.claim_for_myself(store, BUYER, second, "Camille Martin", chat_id=chat)
    step = await chat_state.get_step(store, chat)
    assert step is not None and step.ticket_id == second  # they may type another name


async def test_renaming_selling_and_repricing_end_the_step_with_their_change(store, order):
    _, (first, second, *_) = order
    chat = BUYER
    await services.claim_for_myself(store, BUYER, first, "Camille Martin")
    await chat_state.set_step(store, chat, "rename_name", ticket_id=first)
    await services.rename_holder(store, BUYER, first, "Camille Durand", chat_id=chat)
    assert await chat_state.get_step(store, chat) is None

    await chat_state.set_step(store, chat, "sell_price", ticket_id=second)
    with pytest.raises(Refusal):  # under the event's minimum of 10.00
        await resale.list_for_resale(store, BUYER, second, Decimal("2"), chat_id=chat)
    assert (await chat_state.get_step(store, chat)).ticket_id == second  # may type again
    await resale.list_for_resale(store, BUYER, second, Decimal("25"), chat_id=chat)
    assert await chat_state.get_step(store, chat) is None

    await chat_state.set_step(store, chat, "change_price_price", ticket_id=second)
    await resale.change_price(store, BUYER, second, Decimal("30"), chat_id=chat)
    assert await chat_state.get_step(store, chat) is None


async def test_opening_a_link_remembers_the_user_and_starts_over_even_if_refused(store, order):
    order_id, (ticket_id, *_) = order
    await services.choose_language(store, STRANGER, "fr")
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    await services.revoke_invitation(store, BUYER, ticket_id)
    await chat_state.set_step(store, STRANGER, "invite_email", ticket_id=ticket_id)
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, STRANGER, invite.claim_token, language_code="de",
                                 chat_id=STRANGER)
    assert refused.value.code == "link_revoked"
    assert await chat_state.get_step(store, STRANGER) is None
    user = await services.load_user(store, STRANGER)
    assert (user.chosen_language, user.telegram_language) == ("fr", "de")
    async with store.read() as session:
        from storage.models import Order
        number = await session.scalar(select(Order.number).where(Order.id == order_id))
    opened = await services.open_link(store, STRANGER, await services.create_order_link(
        store, number), chat_id=STRANGER)
    assert (opened.order_id, opened.viewer_language) == (order_id, "fr")


async def test_a_plain_start_remembers_the_user_and_ends_the_step(store, order):
    _, (ticket_id, *_) = order
    await services.choose_language(store, STRANGER, "en")
    await chat_state.set_step(store, STRANGER, "claim_name", ticket_id=ticket_id)
    known = await services.record_user(store, STRANGER, "fr-FR", chat_id=STRANGER)
    assert (known.chosen_language, known.telegram_language) == ("en", "fr-FR")
    assert await chat_state.get_step(store, STRANGER) is None
    again = await services.record_user(store, STRANGER, None)  # the app stopped saying
    assert (again.chosen_language, again.telegram_language) == ("en", None)


async def test_a_language_chosen_from_an_order_needs_access_to_it(store, order):
    order_id, _ = order
    with pytest.raises(Refusal) as refused:  # a forged "language" button of someone's order
        await services.choose_language(store, STRANGER, "en", order_id=order_id)
    assert refused.value.code == "not_found"
    assert await services.load_user(store, STRANGER) is None
    await services.choose_language(store, BUYER, "en", order_id=order_id)
    assert (await services.load_user(store, BUYER)).chosen_language == "en"


async def test_repeated_bad_links_impose_a_cooldown(store, order):
    for _ in range(services.MAX_FAILED_STARTS):
        with pytest.raises(Refusal) as refused:
            await services.open_link(store, STRANGER, "nope" * 8)
        assert refused.value.code == "link_invalid"
    with pytest.raises(Refusal) as refused:
        await services.open_link(store, STRANGER, "nope" * 8)
    assert refused.value.code == "too_many_attempts"


async def test_concurrent_accepts_have_exactly_one_winner(store, order):
    _, (ticket_id, *_) = order
    invite = await services.invite_friend(store, BUYER, ticket_id, "alex@example.org")
    friends = [5000 + n for n in range(20)]
    for friend in friends:
        await services.open_link(store, friend, invite.claim_token)

    async def accept(friend: int):
        try:
            return await services.accept_invitation(store, friend, invite.invitation_id,
                                                    f"Friend Number {chr(65 + friend % 26)}")
        except Refusal as refusal:
            return refusal

    results = await asyncio.gather(*(accept(f) for f in friends))
    winners = [r for r in results if isinstance(r, str)]
    assert len(winners) == 1
    assert all(r.code in {"link_used", "invitation_not_pending", "ticket_changed"}
               for r in results if isinstance(r, Refusal))
    assert await count(store, AuditEntry, AuditEntry.action == "invitation_accepted") == 1


async def test_concurrent_claims_of_one_name_have_one_winner(store, order):
    _, tickets = order

    async def claim(ticket_id: int):
        try:
            return await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
        except Refusal as refusal:
            return refusal.code

    results = await asyncio.gather(*(claim(t) for t in tickets))
    assert results.count("Camille Martin") == 1
    assert results.count("name_taken") == len(tickets) - 1
