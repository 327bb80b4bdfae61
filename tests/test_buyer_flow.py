"""The buyer and friend flows end to end: the real Application over HTTP against the emulator,
the store, and a real SMTP server receiving the invitation mails."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re

import pytest
from sqlalchemy import func, select, update

from storage import services
from storage.db.store import utcnow
from storage.models import AuditEntry, Invitation, OutboxMail, Ticket, TicketState
from tests.conftest import sample_document

BUYER, FRIEND, STRANGER = 1001, 2002, 3003
LINK = re.compile(r"https://t\.me/ticketbot_test_bot\?start=([A-Za-z0-9_-]+)")


async def open_order(harness, *, language: str = "fr", user_language: str | None = "fr",
                     tickets: int = 3, user_id: int = BUYER):
    await harness.import_orders(sample_document(tickets=tickets, language=language))
    token = await harness.order_link("DF-100000")
    buyer = harness.user(user_id, "Camille", "Martin", language_code=user_language)
    reaction = await buyer.start(token)
    return buyer, reaction


async def eventually(probe, within: float = 5.0):
    """Poll ``probe`` until it returns something truthy (background work settles)."""
    async with asyncio.timeout(within):
        while not (result := await probe()):  # noqa: ASYNC110 - the store has no events
            await asyncio.sleep(0.02)
    return result


async def tickets_by_state(store) -> dict[str, int]:
    async with store.read() as session:
        rows = await session.execute(select(Ticket.state, func.count()).group_by(Ticket.state))
        return {state.value: n for state, n in rows}


async def test_deep_link_shows_the_order_in_french(harness):
    buyer, reaction = await open_order(harness)
    text = reaction.text
    assert "Ma commande DF-100000" in text
    assert "Dreamfest 2027 — Saturday" in text
    assert "sam. 17 juil. 2027, 14:00" in text  # the event's own time zone, French format
    assert "Parc des Expositions, Nantes" in text
    assert "À attribuer (3)" in text
    assert len([b for row in buyer.last.buttons for b in row
                if b.callback_data.startswith("t:")]) == 3


async def test_deep_link_shows_the_order_in_english(harness):
    _, reaction = await open_order(harness, language="en", user_language="en")
    assert "My order DF-100000" in reaction.text
    assert "Sat, Jul 17, 2027, 2:00 PM" in reaction.text.replace("\u202f", " ")
    assert "To assign (3)" in reaction.text


async def test_language_falls_back_to_the_order_language(harness):
    _, reaction = await open_order(harness, language="fr", user_language=None)
    assert "Ma commande" in reaction.text


async def test_claim_for_myself_with_the_shop_name(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    shown = await buyer.press("Claim the ticket for myself")
    assert "Camille Martin" in shown.text
    done = await buyer.press("Confirm")
    assert "Completed (1)" in done.text
    assert "Camille Martin" in done.text
    assert done.callback_answer is not None
    assert await tickets_by_state(harness.store) == {"to_assign": 2, "completed": 1}


async def test_claim_for_myself_with_a_corrected_name(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")
    typed = await buyer.send("Camille Martin-Durand")
    assert "Camille Martin-Durand" in typed.text
    done = await buyer.press("Confirm")
    assert "Camille Martin-Durand" in done.text


async def test_duplicate_name_differing_in_accents_and_case_is_refused(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    typed = []
    for ref, name in (("T-DF-100000-1", "Élodie Dupont"), ("T-DF-100000-2", "ELODIE dupont")):
        await buyer.press(ref)
        await buyer.press("Assign the ticket")
        await buyer.press("Claim the ticket for myself")
        typed.append(await buyer.send(name))
        if len(typed) == 1:
            await buyer.press("Confirm")
    assert "already in the name of ELODIE dupont" in typed[1].text  # refused as typed
    assert await tickets_by_state(harness.store) == {"to_assign": 2, "completed": 1}


async def press_send(buyer):
    """Press "Send"; returns what the bot showed and the claim token of the link it gives the
    buyer to forward (a message of its own, which may come a moment after the overview)."""
    mark = buyer.mark()
    sent = await buyer.press("Send")
    message = await buyer.wait_for_message(lambda m: LINK.search(m.text) is not None,
                                           since=mark)
    return sent, LINK.search(message.text).group(1)


async def send_to_friend(buyer, ref: str, email: str):
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    return await buyer.send(email)


async def test_send_to_a_friend_who_claims_from_the_email(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    asked = await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    assert "alex@example.org" in asked.text
    sent, forward_link = await press_send(buyer)
    assert "Pending (1)" in sent.text and "alex@example.org" in sent.text

    mail = await harness.next_mail()
    assert mail["To"] == "alex@example.org"
    body = mail.get_body(("plain",)).get_content()
    assert LINK.search(body).group(1) == forward_link
    assert "Camille Martin" in mail["Subject"]

    friend = harness.user(FRIEND, "Alex", "Durand", language_code="fr")
    claim = await friend.start(forward_link)
    assert "Camille Martin" in claim.text and "Alex Durand" in claim.text
    mark = buyer.mark()
    accepted = await friend.press("Accepter le billet")
    assert "Alex Durand" in accepted.text
    news = await buyer.wait_for_message(lambda m: "Alex Durand" in m.text, since=mark)
    assert "T-DF-100000-1" in news.text
    async with harness.store.read() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.ref == "T-DF-100000-1"))
    assert ticket.state == TicketState.COMPLETED and ticket.holder_name == "Alex Durand"

    again = await harness.user(STRANGER, "Eve").start(forward_link)
    assert "already been used" in again.text


async def test_friend_declines_and_buyer_is_told(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await friend.start(token)
    await friend.press("Decline")
    mark = buyer.mark()
    declined = await friend.press("Yes, decline")
    assert "declined" in declined.text
    news = await buyer.wait_for_message(lambda m: "declined" in m.text, since=mark)
    assert "alex@example.org" in news.text
    assert await tickets_by_state(harness.store) == {"to_assign": 3}


async def test_revoked_invitation_link_stops_working(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Revoke the invitation")
    revoked = await buyer.press("Yes, revoke it")
    assert "To assign (3)" in revoked.text
    friend = harness.user(FRIEND, "Alex", language_code="en")
    assert "withdrawn" in (await friend.start(token)).text


async def test_the_link_to_forward_names_the_event_as_written(harness):
    document = sample_document(language="en")
    document["events"][0]["name"] = "Rock & Roll <Night>"
    await harness.import_orders(document)
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    assert "ticket for Rock & Roll <Night> in their own name" in buyer.find(token).text


# The second case quotes characters HTML gives a meaning to: a refusal shows them as typed,
# in a message (sent as HTML) and in a press's pop-up (plain text) alike, never as "&lt;".
@pytest.mark.parametrize(("invalid", "address", "duplicate"), [
    ("alex(at)example", "alex@example.org", "ALEX@Example.ORG"),
    ("<b>alex</b>&co", "a&b@example.org", "A&B@example.org"),
])
async def test_invalid_and_duplicate_emails_are_refused(harness, invalid, address, duplicate):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    bad = await send_to_friend(buyer, "T-DF-100000-1", invalid)
    assert f"“{invalid}” is not a valid e-mail address" in bad.text
    await buyer.press("« Back")
    await buyer.press("Back to my order")
    # Free when typed, taken before "Send": the constraint refuses it at write time (a pop-up).
    await send_to_friend(buyer, "T-DF-100000-2", duplicate)
    async with harness.store.read() as session:
        first = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
    await services.invite_friend(harness.store, BUYER, first, address)
    refused = await buyer.press("Send")
    assert "already used for another ticket" in refused.callback_answer.text
    assert address.split("@")[0] in refused.callback_answer.text.lower()
    # Typed once taken: refused at once, in a message.
    await buyer.press("« Back")
    await buyer.press("Back to my order")
    typed = await send_to_friend(buyer, "T-DF-100000-3", duplicate)
    assert "already used for another ticket" in typed.text
    assert address.split("@")[0] in typed.text.lower()
    async with harness.store.read() as session:
        assert await session.scalar(select(func.count()).select_from(Invitation)) == 1


async def test_bad_start_token_is_refused_in_the_users_language(harness):
    await harness.import_orders(sample_document())
    reaction = await harness.user(STRANGER, "Eve", language_code="fr").start("forged-token-123")
    assert "Ce lien n’est pas valide" in reaction.text


async def test_forged_button_of_another_users_ticket_changes_nothing(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    ticket_id = int(buyer.last.buttons[0][0].callback_data.split(":")[1])
    stranger = harness.user(STRANGER, "Eve", language_code="en")
    await stranger.start()
    for data in (f"t:{ticket_id}", f"me:{ticket_id}", f"mey:{ticket_id}", f"fr:{ticket_id}",
                 f"rv:{ticket_id}", "o:1:0", "zz:1", "t:abc"):
        reaction = await stranger.press_data(data, message=stranger.last)
        assert "DF-100000" not in reaction.text
        assert "Camille" not in reaction.text
    assert await tickets_by_state(harness.store) == {"to_assign": 3}
    async with harness.store.read() as session:
        actions = set(await session.scalars(select(AuditEntry.action)))
    assert actions <= {"event_imported", "order_imported", "order_link_created", "order_opened"}


async def test_restart_in_the_middle_of_typing_an_email(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    await harness.restart_bot()
    typed = await buyer.send("alex@example.org")
    assert "Send this ticket to alex@example.org?" in typed.text
    sent = await buyer.press("Send")
    assert "Pending (1)" in sent.text


async def test_cancel_leaves_the_input_step(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    cancelled = await buyer.send("/cancel")
    assert "Cancelled." in cancelled.text
    stray = await buyer.send("alex@example.org")
    assert "did not expect a message" in stray.text


async def test_large_order_is_paginated_within_telegram_limits(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en", tickets=120)
    seen: set[str] = set()
    page = buyer.last
    for _ in range(40):
        assert len(page.text) <= 4096
        assert sum(len(row) for row in page.buttons) <= 100
        seen |= {b.callback_data for row in page.buttons for b in row
                 if b.callback_data.startswith("t:")}
        if "Next ▶" not in page.button_texts():
            break
        page = (await buyer.press("Next ▶")).last
    assert len(seen) == 120


async def test_plain_start_lists_orders_and_held_tickets(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    home = await buyer.start()
    assert "DF-100000" in home.text and "3 tickets" in home.text
    nobody = await harness.user(STRANGER, "Eve", language_code="en").start()
    assert "confirmation e-mail" in nobody.text


@pytest.mark.parametrize("command, french", [
    ("/help", "Je vous aide à gérer les billets de votre commande."),
    ("/cancel", "Il n’y avait rien à annuler."),
])
async def test_commands_answer_in_french(harness, command, french):
    user = harness.user(STRANGER, "Eve", language_code="fr")
    reaction = await user.send(command)
    assert french in reaction.text


async def invite_and_get_token(harness, buyer, ref: str = "T-DF-100000-1",
                               email: str = "alex@example.org") -> str:
    await send_to_friend(buyer, ref, email)
    _, token = await press_send(buyer)
    return token


async def test_expired_invitation_comes_back_and_buyer_is_told(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    token = await invite_and_get_token(harness, buyer)
    async with harness.store.write() as session:
        await session.execute(update(Invitation).values(
            expires_at=utcnow() - dt.timedelta(minutes=1)))
    friend = harness.user(FRIEND, "Alex", language_code="en")
    assert "expired" in (await friend.start(token)).text
    mark = buyer.mark()
    await harness.run_background()
    news = await buyer.wait_for_message(lambda m: "expired" in m.text, since=mark)
    assert "alex@example.org" in news.text
    assert await tickets_by_state(harness.store) == {"to_assign": 3}


async def test_two_friends_accepting_one_link_at_once_have_one_winner(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    token = await invite_and_get_token(harness, buyer)
    first = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    second = harness.user(STRANGER, "Sam", "Leroy", language_code="en")
    await first.start(token)
    await second.start(token)
    results = await asyncio.gather(first.press("Accept the ticket"),
                                   second.press("Accept the ticket"))
    winners = [r for r in results if "The ticket is yours" in r.text]
    losers = [r for r in results if r.callback_answer and r.callback_answer.show_alert]
    assert len(winners) == 1 and len(losers) == 1
    assert "already been used" in losers[0].callback_answer.text
    async with harness.store.read() as session:
        holders = list(await session.scalars(
            select(Ticket.holder_name).where(Ticket.state == TicketState.COMPLETED)))
    assert len(holders) == 1


async def test_logs_carry_no_tokens_emails_or_names(harness, caplog):
    caplog.set_level(logging.INFO)
    buyer, _ = await open_order(harness, language="en", user_language="en")
    token = await invite_and_get_token(harness, buyer)
    await harness.next_mail()
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await friend.start(token)
    await friend.press("Accept the ticket")
    await harness.user(STRANGER, "Eve").start("forged-token-123")
    ours = [r for r in caplog.records if not r.name.startswith("mail.log")]  # the SMTP server's
    logged = "\n".join(record.getMessage() + (record.exc_text or "") for record in ours)
    for secret in (token, "alex@example.org", "Alex Durand", "Camille", "forged-token-123",
                   harness.emulator.token):
        assert secret not in logged


async def test_mail_of_an_invitation_revoked_before_sending_is_not_sent(harness):
    await open_order(harness, language="en", user_language="en")
    await harness.stop_bot()  # nothing sends while we revoke
    async with harness.store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-1"))
    from storage import services

    await services.invite_friend(harness.store, BUYER, ticket_id, "alex@example.org")
    await services.revoke_invitation(harness.store, BUYER, ticket_id)
    await harness.start_bot()  # its worker picks the mail up at once

    async def settled_mail():
        async with harness.store.read() as session:
            mail = await session.scalar(select(OutboxMail))
        return mail if mail.sent_at is not None else None

    mail = await eventually(settled_mail)
    assert mail.last_error == "obsolete: not sent"
    assert harness.mail.messages == []
