"""What a new user tripped over (issue 23), each with the exact input that showed it: the
shop's rules (one address, one name per event), what people type, and what the bot says. The
real Application against the emulator, the real store, real SMTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.webapp.screens import ticket_json
from conversations.presentation.actions import offered_names
from locales import translator
from storage import services
from storage.errors import Refusal
from storage.models import Ticket, TicketState
from tests.conftest import sample_document
from tests.test_buyer_flow import (
    BUYER,
    FRIEND,
    open_order,
    press_send,
    send_to_friend,
    tickets_by_state,
)

OWN_ADDRESS = "camille0@example.org"  # the sample order's buyer


async def claim_for_myself(buyer, ref: str, name: str | None = None):
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    shown = await buyer.press("Claim the ticket for myself")
    if name is not None:
        shown = await buyer.send(name)
    return shown


async def addresses(store) -> dict[str, str | None]:
    """Each ticket's holder address, by reference."""
    async with store.read() as session:
        return dict((await session.execute(select(Ticket.ref, Ticket.holder_email))).all())


async def confirm_claim(buyer):
    """Press "Confirm" on a claim, and wait for the ticket the bot then sends in a message of
    its own (so that the next press is not taken by that message's arrival)."""
    mark = buyer.mark()
    done = await buyer.press("Confirm")
    await buyer.wait_for_message(lambda m: m.media is not None, since=mark)
    return done


def buttons(user) -> str:
    """The labels of the buttons under the user's newest message, one string to search."""
    return " | ".join(user.last.button_texts())


async def ticket_ids(store) -> dict[str, int]:
    async with store.read() as session:
        return dict((await session.execute(select(Ticket.ref, Ticket.id))).all())


# --- rules -----------------------------------------------------------------------------------


async def test_her_address_is_used_once_her_ticket_is_in_her_name(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await claim_for_myself(buyer, "T-DF-100000-1")
    await confirm_claim(buyer)
    refused = await send_to_friend(buyer, "T-DF-100000-2", OWN_ADDRESS)
    assert f"The address {OWN_ADDRESS} is already used" in refused.text
    assert "Send" not in buttons(buyer)
    # The store itself refuses, not only the chat's early question.
    ids = await ticket_ids(harness.store)
    with pytest.raises(Refusal) as refusal:
        await services.invite_friend(harness.store, BUYER, ids["T-DF-100000-2"],
                                     OWN_ADDRESS.upper())
    assert refusal.value.code == "email_taken"
    assert await tickets_by_state(harness.store) == {"to_assign": 2, "completed": 1}


async def test_her_own_ticket_carries_no_address_once_it_was_sent_a_ticket(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", OWN_ADDRESS)
    await press_send(buyer)
    await claim_for_myself(buyer, "T-DF-100000-2")
    done = await buyer.press("Confirm")
    assert "Completed (1)" in done.text
    assert await addresses(harness.store) == {"T-DF-100000-1": OWN_ADDRESS,
                                              "T-DF-100000-2": None, "T-DF-100000-3": None}


async def test_her_own_claim_and_a_ticket_sent_to_her_at_once_use_her_address_once(harness):
    await open_order(harness, language="en", user_language="en")
    ids = await ticket_ids(harness.store)
    outcomes = await asyncio.gather(
        services.claim_for_myself(harness.store, BUYER, ids["T-DF-100000-1"], "Camille Martin"),
        services.invite_friend(harness.store, BUYER, ids["T-DF-100000-2"], OWN_ADDRESS),
        return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, Exception) and not isinstance(o, Refusal)] == []
    keys = [a for a in (await addresses(harness.store)).values() if a is not None]
    assert keys == [OWN_ADDRESS]


async def test_two_of_her_claims_at_once_both_succeed_and_use_her_address_once(harness):
    await open_order(harness, language="en", user_language="en")
    ids = await ticket_ids(harness.store)
    await asyncio.gather(*(
        services.claim_for_myself(harness.store, BUYER, ids[ref], name)
        for ref, name in (("T-DF-100000-1", "Camille Martin"), ("T-DF-100000-2", "Léa Martin"))))
    assert await tickets_by_state(harness.store) == {"to_assign": 1, "completed": 2}
    keys = [a for a in (await addresses(harness.store)).values() if a is not None]
    assert keys == [OWN_ADDRESS]


async def test_her_own_name_is_not_offered_for_her_second_ticket(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    first = await claim_for_myself(buyer, "T-DF-100000-1")
    assert "Camille Martin" in first.text and "Confirm" in buttons(buyer)
    await confirm_claim(buyer)
    second = await claim_for_myself(buyer, "T-DF-100000-2")
    assert "Camille Martin" not in second.text.split("Status:")[1]
    assert "Type the name to print on the ticket." in second.text
    assert "Confirm" not in buttons(buyer)
    typed = await buyer.send("Léa Martin")
    assert "Léa Martin" in typed.text and "Confirm" in buttons(buyer)


async def test_a_friend_who_holds_a_ticket_is_asked_for_another_name(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, first_token = await press_send(buyer)
    await friend.start(first_token)
    mark = buyer.mark()
    await friend.press("Accept the ticket")
    await buyer.wait_for_message(lambda m: "Alex Durand" in m.text, since=mark)  # the news
    await buyer.press("Open my order")
    await send_to_friend(buyer, "T-DF-100000-2", "alex.durand@example.org")
    _, second_token = await press_send(buyer)
    claim = await friend.start(second_token)
    assert "Alex Durand" not in claim.text
    assert "Type the name to print on the ticket." in claim.text
    assert friend.last.button_texts() == ["✖ Decline"]
    typed = await friend.send("Sam Durand")
    assert "Sam Durand" in typed.text
    accepted = await friend.press("Accept the ticket")
    assert "Sam Durand" in accepted.text


async def test_the_mini_app_offers_the_buyers_name_only_while_free(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    ids = await ticket_ids(harness.store)
    details = await services.ticket_details(harness.store, BUYER, ids["T-DF-100000-2"])
    page = ticket_json(details, translator("en"), bounds=None, options=None,
                       offered=await offered_names(harness.store, details))
    claim = next(a for a in page["actions"][0]["offers"] if a["action"] == "claim")
    assert claim["offered"] == "Camille Martin"
    await claim_for_myself(buyer, "T-DF-100000-1")
    await buyer.press("Confirm")
    details = await services.ticket_details(harness.store, BUYER, ids["T-DF-100000-2"])
    assert await offered_names(harness.store, details) == {}


# --- what people type ------------------------------------------------------------------------


async def test_a_single_name_is_a_name_and_the_refusal_says_what_is_asked(harness):
    buyer, _ = await open_order(harness)  # French
    await buyer.press("T-DF-100000-1")
    await buyer.press_data(f"me:{(await ticket_ids(harness.store))['T-DF-100000-1']}")
    accepted = await buyer.send("Camille")
    assert "<b>Camille</b>" in buyer.last.html
    assert accepted.text.count("Camille") >= 1
    refused = await buyer.send("1 Camille")
    assert "commençant par une lettre" in refused.text
    assert "prénom et un nom" not in refused.text
    done = await buyer.press("Confirmer")
    assert "Camille" in done.text
    async with harness.store.read() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.ref == "T-DF-100000-1"))
    assert (ticket.state, ticket.holder_name) == (TicketState.COMPLETED, "Camille")


# The prices a French reader types after reading "par exemple 89,00 €" (U+00A0 before the sign,
# as Babel prints it; U+202F as other French texts print it).
FRENCH_PRICES = ["50 €", "50€", "50,00\u00a0€", "50,00\u202f€", "50,00 €", "EUR 50", "€50",
                 "eur 50", "€ 50"]


async def start_selling_in(harness, language: str, label: str):
    buyer, _ = await open_order(harness, language=language, user_language=language)
    await buyer.press("T-DF-100000-1")
    await buyer.press(label)
    return buyer


@pytest.mark.parametrize("typed", FRENCH_PRICES)
async def test_a_french_price_typed_as_the_bot_writes_it_is_understood(harness, typed):
    buyer = await start_selling_in(harness, "fr", "Vendre ce billet")
    asked = await buyer.send(typed)
    assert "50,00\u00a0€" in asked.text, asked.text
    listed = await buyer.press("Confirmer")
    assert "En revente (1)" in listed.text


@pytest.mark.parametrize("typed", ["€50", "€50.00", "50 €", "EUR 50", "50 EUR"])
async def test_an_english_price_typed_as_the_bot_writes_it_is_understood(harness, typed):
    buyer = await start_selling_in(harness, "en", "Sell this ticket")
    asked = await buyer.send(typed)
    assert "€50.00" in asked.text, asked.text


@pytest.mark.parametrize("typed", ["5€0", "€€50", "50 USD", "$50", "50,00 €"])
async def test_a_price_with_a_misplaced_or_foreign_sign_is_refused(harness, typed):
    buyer = await start_selling_in(harness, "en", "Sell this ticket")
    refused = await buyer.send(typed)
    assert "Please type a price between €10.00 and €89.00" in refused.text, typed
    assert "Confirm" not in buttons(buyer)



# --- what the bot says -----------------------------------------------------------------------


async def test_reopening_a_declined_link_says_who_declined(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="fr")
    await friend.start(token)
    await friend.press("Refuser")
    await friend.press("Oui, refuser")
    again = await friend.start(token)
    assert "La personne à qui ce billet a été envoyé l’a refusé" in again.text
    assert "demandez à Camille Martin" in again.text
    assert "retiré par l’expéditeur" not in again.text


async def test_a_withdrawn_link_still_says_the_sender_withdrew_it(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Revoke the invitation")
    await buyer.press("Yes, revoke it")
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="fr")
    assert "retiré par l’expéditeur" in (await friend.start(token)).text


@pytest.mark.parametrize(("language", "zone"), [("fr", "(heure d’Europe centrale)"),
                                                ("en", "(Central European Time)"),
                                                ("nl", "(Midden-Europese tijd)")])
async def test_a_claim_links_expiry_names_its_time_zone(harness, language, zone):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    claim = await harness.user(FRIEND, "Alex", "Durand", language_code=language).start(token)
    [until] = [line for line in claim.text.splitlines() if zone in line]
    assert until.endswith(f"{zone}."), claim.text  # "This link is valid until … (zone)."
    mail = await harness.next_mail()
    assert "(Central European Time)" in mail.get_body(("plain",)).get_content()


async def test_the_language_is_named_as_the_sentence_writes_it(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("More actions")
    switched = await buyer.press("Français")
    assert "Je vous parlerai désormais en français." in switched.text
    await buyer.press("Plus d’actions")
    assert "Langue : français" in buyer.last.text


async def test_the_french_overview_heads_completed_tickets_with_the_shops_word(harness):
    buyer, _ = await open_order(harness)  # French
    await buyer.press("T-DF-100000-1")
    await buyer.press("Attribuer le billet")
    await buyer.press("Mettre le billet à mon nom")
    done = await buyer.press("Confirmer")
    assert "Statut « Complété » (1)" in done.text
    assert "Réclamer le billet pour moi-même" not in str(buyer.history)


async def test_exchange_buttons_are_never_cut_inside_a_word(harness):
    document = sample_document(language="en")
    document["events"][1]["name"] = "Dreamfest 2027 — Sunday afternoon session with guests"
    await harness.import_orders(document)
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await buyer.press("T-DF-100000-1")
    options = await buyer.press("Exchange")
    full = "Dreamfest 2027 — Sunday afternoon session with guests — Sun, Jul 18, 2027, 2:00\u202fPM"
    assert f"• {full} (5 places left)" in options.text  # the message says it all
    [label] = [text for text in buyer.last.button_texts() if "Dreamfest" in text]
    assert len(label) <= 60 and label.endswith(" …")
    shown_words = label.removesuffix(" …").split(" ")
    assert full.split(" ")[:len(shown_words)] == shown_words  # whole words only
    confirm = await buyer.press(label)
    assert "Sunday afternoon session with guests" in confirm.text
