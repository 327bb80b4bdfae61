"""Resale, exchange, the complete ticket menu and "more actions", end to end through the bot."""

from __future__ import annotations

import datetime as dt
import re

from sqlalchemy import select, update

from bot.cli import main as ticketbot
from storage import chat_state, services
from storage.db.store import utcnow
from storage.models import Event, ResaleListing, Ticket, TicketState
from tests.conftest import sample_document

BUYER, OTHER = 1001, 1002


async def open_order(harness, *, language: str = "en", tickets: int = 3, number="DF-100000",
                     user_id: int = BUYER, document: dict | None = None):
    await harness.import_orders(document or sample_document(tickets=tickets, language=language))
    token = await harness.order_link(number)
    buyer = harness.user(user_id, "Camille", "Martin", language_code=language)
    await buyer.start(token)
    return buyer


async def start_selling(buyer, ref: str = "T-DF-100000-1", label: str = "Sell this ticket"):
    await buyer.press(ref)
    return await buyer.press(label)


async def test_list_change_price_and_cancel_in_english(harness):
    buyer = await open_order(harness)
    asked = await start_selling(buyer)
    assert "between €10.00 and €89.00" in asked.text
    assert "€45.50" in (await buyer.send("45.50")).text
    listed = await buyer.press("Confirm")
    assert "On resale (1)" in listed.text and "€45.50" in listed.text
    assert listed.text.index("To assign") < listed.text.index("On resale")
    assert await chat_state.get_step(harness.store, buyer.id) is None  # ended with the listing

    await buyer.press("T-DF-100000-1")
    menu = buyer.last.button_texts()
    assert any("Change the price" in b for b in menu) and any("Cancel the sale" in b for b in menu)
    assert not any("Assign" in b for b in menu)
    await buyer.press("Change the price")
    await buyer.send("60")
    changed = await buyer.press("Confirm")
    assert "€60.00" in changed.text
    assert await chat_state.get_step(harness.store, buyer.id) is None

    await buyer.press("T-DF-100000-1")
    await buyer.press("Cancel the sale")
    cancelled = await buyer.press("Yes, cancel the sale")
    assert "To assign (3)" in cancelled.text and "On resale" not in cancelled.text


async def test_french_prices_are_read_in_the_french_way(harness):
    buyer = await open_order(harness, language="fr")
    asked = await start_selling(buyer, label="Vendre ce billet")
    assert "10,00\u00a0€" in asked.text and "89,00\u00a0€" in asked.text
    assert "45,50\u00a0€" in (await buyer.send("45,50")).text
    assert "45,50\u00a0€" in (await buyer.send("45.50")).text  # the dot is understood too
    listed = await buyer.press("Confirmer")
    assert "En revente (1)" in listed.text


async def test_bad_prices_are_refused_with_the_range_and_change_nothing(harness):
    buyer = await open_order(harness)
    await start_selling(buyer)
    for typed in ("120", "5", "-3", "abc", "45.555", "45,50", "1e3", "NaN"):
        reply = await buyer.send(typed)
        assert "€10.00" in reply.text and "€89.00" in reply.text, typed
    async with harness.store.read() as session:
        assert (await session.scalars(select(ResaleListing))).all() == []


async def test_resale_off_shows_the_faq_instead_of_a_sell_button(harness):
    document = sample_document()
    document["events"][0] = {**document["events"][0], "resale": {"enabled": False}}
    buyer = await open_order(harness, document=document)
    menu = await buyer.press("T-DF-100000-1")
    assert "Resale is not offered for this event" in menu.text
    assert "https://dreamfest.example/faq" in menu.text
    assert not any("Sell" in b for b in buyer.last.button_texts())
    faq = [b for row in buyer.last.buttons for b in row if b.url]
    assert faq and faq[0].url == "https://dreamfest.example/faq"
    forged = await buyer.press_data(buyer.last.buttons[0][0].callback_data.replace("a:", "sl:"))
    assert "Sell" not in forged.text and "Type the price" not in forged.text


async def test_resale_deadline_passed_is_said_with_the_date(harness):
    buyer = await open_order(harness)
    async with harness.store.write() as session:
        await session.execute(update(Event).where(Event.id == "fest-sat").values(
            resale_deadline=dt.datetime(2026, 1, 10, 22, 59, tzinfo=dt.UTC)))
    menu = await buyer.press("T-DF-100000-1")
    assert "Resale closed on Sat, Jan 10, 2026, 11:59" in menu.text.replace("\u202f", " ")


async def test_sale_completed_by_the_market(harness, monkeypatch):
    buyer = await open_order(harness)
    await start_selling(buyer)
    await buyer.send("50")
    await buyer.press("Confirm")
    async with harness.store.read() as session:
        listing = await session.scalar(select(ResaleListing))
        barcode = (await session.get(Ticket, listing.ticket_id)).barcode
    monkeypatch.setenv("TICKETBOT_DATABASE_URL", harness.store.url)
    monkeypatch.setenv("TICKETBOT_SECRET", "test-secret")
    mark = buyer.mark()
    assert await market_reports_sold(harness, listing.id) == 0
    await harness.run_background()
    news = await buyer.wait_for_message(lambda m: "sold" in m.text, since=mark)
    assert "T-DF-100000-1" in news.text and "€50.00" in news.text
    overview = await buyer.press("Open my order")
    assert "T-DF-100000-1" not in overview.text and "To assign (2)" in overview.text
    async with harness.store.read() as session:
        ticket = await session.get(Ticket, listing.ticket_id)
    assert ticket.state == TicketState.SOLD and ticket.barcode == barcode
    assert await market_reports_sold(harness, listing.id) == 1  # only once


async def market_reports_sold(harness, listing_id: int) -> int:
    """``ticketbot resale-sold`` as the market's operator runs it; its exit status. On
    PostgreSQL the tests live in a schema of their own, which a command line cannot name, so
    there the command's service is called as the command would (the CLI is the same code)."""
    import asyncio

    from storage.errors import Refusal
    from storage.services.resale import complete_sale

    if harness.store.is_sqlite:
        # The CLI runs its own event loop, as it does from a shell.
        return await asyncio.to_thread(ticketbot, ["resale-sold", str(listing_id)])
    try:
        await complete_sale(harness.store, listing_id)
    except Refusal:
        return 1
    return 0


async def claim_for_myself(buyer, ref: str = "T-DF-100000-1", name: str | None = None):
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")
    if name:
        await buyer.send(name)
    return await buyer.press("Confirm")


async def exchange_first_ticket(buyer):
    await buyer.press("T-DF-100000-1")
    options = await buyer.press("Exchange")
    assert "Dreamfest 2027 — Sunday" in options.text
    return options


async def test_exchange_for_another_session(harness):
    buyer = await open_order(harness)
    await claim_for_myself(buyer)
    options = await exchange_first_ticket(buyer)
    assert "5 places left" in options.text
    confirm = await buyer.press("Dreamfest 2027 — Sunday")
    assert "name on this ticket will be cleared" in confirm.text
    done = await buyer.press("Yes, exchange it")
    assert "was exchanged for Dreamfest 2027 — Sunday" in done.text
    assert "Dreamfest 2027 — Sunday" in done.text and "To assign (3)" in done.text
    async with harness.store.read() as session:
        old = await session.scalar(select(Ticket).where(Ticket.ref == "T-DF-100000-1"))
        assert old.state == TicketState.EXCHANGED
        assert (await session.get(Event, "fest-sun")).exchange_capacity == 4


async def test_last_exchange_place_raced_by_two_buyers(harness):
    document = sample_document(orders=2)
    document["events"][1] = {**document["events"][1], "capacity": 1}
    await harness.import_orders(document)
    buyers = []
    for n, user_id in enumerate((BUYER, OTHER)):
        buyer = harness.user(user_id, "Buyer", str(n), language_code="en")
        await buyer.start(await harness.order_link(f"DF-10000{n}"))
        await buyer.press(f"T-DF-10000{n}-1")
        await buyer.press("Exchange")
        await buyer.press("Dreamfest 2027 — Sunday")
        buyers.append(buyer)
    import asyncio

    results = await asyncio.gather(*(b.press("Yes, exchange it") for b in buyers))
    won = [r for r in results if "was exchanged" in r.text]
    lost = [r for r in results if r.callback_answer and r.callback_answer.show_alert]
    assert len(won) == 1 and len(lost) == 1
    assert "No places are left for Dreamfest 2027 — Sunday" in lost[0].callback_answer.text


async def test_name_correction_hits_the_uniqueness_rule(harness):
    buyer = await open_order(harness)
    await claim_for_myself(buyer)
    await claim_for_myself(buyer, "T-DF-100000-2", "Alex Durand")
    await buyer.press("Camille Martin")
    await buyer.press("Correct the name")
    typed = await buyer.send("ALEX durand")
    assert "already in the name of" in typed.text  # refused as typed, no Confirm offered
    # A name free when typed but taken before "Confirm": the constraint decides at write time.
    await buyer.send("Sam Roy")
    async with harness.store.read() as session:
        third = await session.scalar(select(Ticket.id).where(Ticket.ref == "T-DF-100000-3"))
    await services.claim_for_myself(harness.store, BUYER, third, "sam ROY")
    refused = await buyer.press("Confirm")
    assert "already in the name of" in refused.callback_answer.text
    await buyer.send("Camille Martin-Roy")
    done = await buyer.press("Confirm")
    assert "Camille Martin-Roy" in done.text


async def test_take_back_a_completed_ticket(harness):
    buyer = await open_order(harness)
    await claim_for_myself(buyer)
    await buyer.press("Camille Martin")
    await buyer.press("Take the ticket back")
    done = await buyer.press("Yes, take it back")
    assert "To assign (3)" in done.text and "Completed" not in done.text


async def test_language_switch_is_remembered_and_applied_at_once(harness):
    buyer = await open_order(harness)
    await buyer.press("More actions")
    switched = await buyer.press("Français")
    assert "Ma commande DF-100000" in switched.text
    await harness.restart_bot()
    home = await buyer.start()
    assert "Vos commandes" in home.text


async def test_more_actions_offer_faq_support_and_other_orders(harness):
    harness.settings.support_contact = "@dreamfest_help"
    buyer = await open_order(harness)
    more = await buyer.press("More actions")
    urls = [b.url for row in buyer.last.buttons for b in row if b.url]
    assert "https://dreamfest.example/faq" in urls
    support = await buyer.press("Contact support")
    assert "@dreamfest_help" in support.text and "DF-100000" in support.text
    await buyer.press("« Back")
    home = await buyer.press("My orders")
    assert "DF-100000" in home.text
    assert "More actions" in more.text


async def test_every_menu_state_lists_its_actions(harness):
    buyer = await open_order(harness)
    texts = (await buyer.press("T-DF-100000-1")) and buyer.last.button_texts()
    assert [re.sub(r"^\W+", "", b) for b in texts] == [
        "Assign the ticket", "Sell this ticket", "Exchange", "Back to my order"]


async def test_personalisation_deadline_passed_refuses_with_the_date(harness):
    buyer = await open_order(harness)
    async with harness.store.write() as session:
        await session.execute(update(Event).where(Event.id == "fest-sat").values(
            personalisation_deadline=utcnow() - dt.timedelta(days=1)))
    menu = await buyer.press("T-DF-100000-1")
    assert "Personalisation closed on" in menu.text
    assert not any("Assign" in b for b in buyer.last.button_texts())


def resale_section(text: str) -> str:
    """The overview's "on resale" section alone, without the notice above the order."""
    start = max(text.find("On resale ("), text.find("En revente ("))
    assert start >= 0, text
    return text[start:].split("\n\n")[0]


async def test_overview_lists_each_listing_with_its_price_and_the_new_price_at_once(harness):
    buyer = await open_order(harness)
    await start_selling(buyer)
    await buyer.send("45.50")
    listed = await buyer.press("Confirm")
    assert "T-DF-100000-1 — on resale at €45.50" in resale_section(listed.text)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Change the price")
    await buyer.send("60")
    changed = await buyer.press("Confirm")
    section = resale_section(changed.text)
    assert "on resale at €60.00" in section and "45.50" not in section
    refreshed = await buyer.press("Refresh")
    assert "on resale at €60.00" in resale_section(refreshed.text)


async def test_french_overview_lists_the_resale_price_the_french_way(harness):
    buyer = await open_order(harness, language="fr")
    await start_selling(buyer, label="Vendre ce billet")
    await buyer.send("45,50")
    listed = await buyer.press("Confirmer")
    assert "T-DF-100000-1 — en revente à 45,50\u00a0€" in resale_section(listed.text)
