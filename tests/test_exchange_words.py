"""An exchanged ticket as every face shows it (issue 23): its reference (the old one with -E1)
and its price (the face value of its category in the target session) the same in the chat,
the PDF, the CSV export and the HTTP API; and its old holder told by e-mail that the ticket in
their mailbox is no longer valid. The real bot against the emulator, real SMTP."""

from __future__ import annotations

import csv
import io

import pypdf
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from conversations.presentation import ticket_export
from storage.models import Ticket
from storage.services.exchange import exchanged_ref
from tests.conftest import sample_document
from tests.test_buyer_flow import BUYER, FRIEND, open_order, press_send, send_to_friend

NEW_REF = "T-DF-100000-1-E1"
TOKEN = "api-token"


def with_sunday_tickets() -> dict:
    """The sample order, and a second order whose tickets are Sunday passes at 79.00: what
    the Sunday session sells, so what a Saturday pass (89.00) exchanged into it becomes."""
    document = sample_document(orders=2, language="en")
    for ticket in document["orders"][1]["tickets"]:
        ticket.update(event="fest-sun", price="79.00",
                      category={"en": "Sunday pass", "fr": "Pass dimanche"})
    return document


def test_an_exchanged_reference_counts_its_exchanges():
    assert exchanged_ref("T-100236-1") == "T-100236-1-E1"
    assert exchanged_ref("T-100236-1-E1") == "T-100236-1-E2"
    assert len(exchanged_ref("T" * 64)) == 64


async def test_an_exchanged_ticket_reads_the_same_everywhere_and_its_holder_is_told(harness):
    await harness.import_orders(with_sunday_tickets())
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    assert (await harness.next_mail())["To"] == "alex@example.org"  # the invitation
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="fr")
    await friend.start(token)
    mark = buyer.mark()
    await friend.press("Accepter le billet")
    await buyer.wait_for_message(lambda m: "Alex Durand" in m.text, since=mark)
    await harness.next_mail()  # the friend's "your ticket" mail

    await buyer.press("Open my order")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Exchange")
    await buyer.press("Dreamfest 2027 — Sunday")
    done = await buyer.press("Yes, exchange it")
    assert "Ticket T-DF-100000-1 was exchanged for Dreamfest 2027 — Sunday" in done.text
    assert f"Sunday pass · {NEW_REF}" in done.text  # the chat: new category, new reference

    void = await harness.next_mail()
    assert void["To"] == "alex@example.org"
    assert void["Subject"] == "Votre billet pour Dreamfest 2027 — Saturday n’est plus valable"
    body = void.get_body(("plain",)).get_content()
    assert "Le billet T-DF-100000-1 pour Dreamfest 2027 — Saturday n’est plus valable" in body
    assert "Bonjour Alex Durand," in body

    # The buyer keeps the new ticket: its PDF, in her "your ticket" mail, names it and its price.
    await buyer.press(NEW_REF)
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")
    await buyer.press("Confirm")
    mail = await harness.next_mail()
    pdfs = [part for part in mail.iter_attachments() if part.get_filename().endswith(".pdf")]
    text = pypdf.PdfReader(io.BytesIO(pdfs[0].get_content())).pages[0].extract_text()
    assert NEW_REF in text and "€79.00" in text and "€89.00" not in text

    rows = "".join([piece async for piece in ticket_export.ticket_csv(harness.store,
                                                                        "fest-sun", "en")])
    exported = {row[0]: row for row in csv.reader(io.StringIO(rows.lstrip("\ufeff")))}
    assert exported[NEW_REF][2] == "Sunday pass" and exported[NEW_REF][-1] == "79.00"

    app = create_api(ApiServices(store=harness.store, api_token=TOKEN,
                                 bot_username=lambda: "bot", metrics=Metrics()))
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/api/orders/DF-100000",
                                  headers={"Authorization": f"Bearer {TOKEN}"})
        order = await answer.json()
    [api_ticket] = [ticket for ticket in order["tickets"] if ticket["ref"] == NEW_REF]
    assert (api_ticket["price"], api_ticket["category"]) == ("79.00", "Sunday pass")
    async with harness.store.read() as session:
        stored = await session.scalar(select(Ticket).where(Ticket.ref == NEW_REF))
    assert str(stored.price) == "79.00"


async def test_exchanging_a_ticket_nobody_holds_mails_nobody(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Exchange")
    await buyer.press("Dreamfest 2027 — Sunday")
    await buyer.press("Yes, exchange it")
    await harness.run_background()
    assert harness.mail.messages == []
