"""A rotating event's ticket in hand, end to end: nothing the bot sends (chat messages, pictures,
PDFs, the ticket e-mail) holds a code that scans ``ok``; the chat's card opens the live ticket in
the Mini App; the Mini App shows the live code's makings only from the reveal time on, and never
a still picture; ``ticketbot run`` refuses to start without the Mini App."""

from __future__ import annotations

import datetime as dt
import io
import re
from zoneinfo import ZoneInfo

import pypdf
import pytest
from aiohttp.test_utils import TestClient, TestServer
from sqlalchemy import select

from bot import cli
from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from bot.settings import Settings
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from storage import entry_codes, services
from storage.db.store import utcnow
from storage.models import Ticket
from storage.services import entry_keys
from storage.services.importing.importer import import_document
from storage.ticket_delivery import held_card
from tests.conftest import ON_POSTGRES
from tests.harness import close_harness, open_harness
from tests.test_gate import open_gate
from tests.test_rotating_entry import PERIOD, rotating_document
from tests.test_ticket_in_hand import claim_for_myself
from tests.ticket_helpers import decode_qr, decode_qr_in_pdf, settle_changes

BUYER = 1001
WEBAPP = "https://tickets.example.org"
TOKEN = "123456:TEST-TOKEN"
CODES = re.compile(r"\b\d{16}\b|TB1\.\S+")


@pytest.fixture
async def mini_app_harness(store):
    opened = await open_harness(store, webapp_url=WEBAPP)
    try:
        yield opened
    finally:
        await close_harness(opened)


async def everything_sent(harness, buyer) -> list[str]:
    """Every text, decoded QR and PDF text the buyer's chat holds, and the mails received."""
    found = []
    for message in buyer.messages:
        found.append(message.text or "")
        if message.media:
            content = harness.emulator.media.content(message.media["file_id"])
            if message.media["type"] == "photo":
                found.extend(decode_qr(content))
            elif message.media.get("file_name", "").endswith(".pdf"):
                found.extend(page.extract_text() for page in pypdf.PdfReader(
                    io.BytesIO(content)).pages)
    for mail in harness.mail.messages:
        for part in mail.walk():
            content = part.get_content() if not part.is_multipart() else ""
            if isinstance(content, bytes) and part.get_filename("").endswith(".pdf"):
                found.extend(page.extract_text() for page in pypdf.PdfReader(
                    io.BytesIO(content)).pages)
                found.extend(decode_qr_in_pdf(content))
            elif isinstance(content, str):
                found.append(content)
    return found


async def test_nothing_the_bot_sends_for_a_rotating_event_scans_ok(mini_app_harness, store):
    harness = mini_app_harness
    await harness.import_orders(rotating_document(tickets=1))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await claim_for_myself(buyer, name=None)
    await settle_changes(harness)
    (card,) = [m for m in buyer.messages if "entry code is live" in (m.text or "")]
    assert not card.media  # a card, no picture
    async with store.read() as session:
        ticket_id, barcode = (await session.execute(select(Ticket.id, Ticket.barcode))).one()
    live_button = card.buttons[0][0]
    assert live_button.raw["web_app"]["url"] == f"{WEBAPP}/app/?ticket={ticket_id}"
    await buyer.press("PDF", message=card)
    mail = await harness.next_mail()
    harness.mail.messages.append(mail)  # read below with the others
    assert "appears in Telegram only" in mail.get_body(("plain",)).get_content()

    sent = await everything_sent(harness, buyer)
    assert any("No code is printed on this ticket" in text for text in sent)
    assert not any(barcode in text for text in sent)
    candidates = {code for text in sent for code in CODES.findall(text)}
    gate = await open_gate(store)
    try:
        for code in candidates:
            assert (await gate.scan(code)).json["result"] != "ok", code
        assert (await gate.scan(barcode)).json["result"] == "stale"  # even if it leaked
        signed = await entry_keys.signed_ticket(store, ticket_id)
        step = entry_codes.step_at(utcnow().timestamp(), PERIOD)
        assert (await gate.scan(signed.code_at(step))).json["result"] == "ok"
    finally:
        await gate.client.close()


async def test_a_holder_change_turns_the_card_void(mini_app_harness, store):
    harness = mini_app_harness
    await harness.import_orders(rotating_document(tickets=1))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await claim_for_myself(buyer, name=None)
    await settle_changes(harness)
    async with store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id))
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    await settle_changes(harness)
    cards = [m for m in buyer.messages if "Ticket T-DF-100000-1" in (m.text or "")
             or "entry code is live" in (m.text or "")]
    assert any("no longer valid" in m.text and not m.buttons for m in cards)
    assert any("entry code is live" in m.text and "Alex Dupont" in m.text for m in cards)


# --- the Mini App's live ticket ---------------------------------------------------------------


async def mini_app_client(store):
    api = ApiServices(store=store, api_token="api-token", bot_username=lambda: "bot",
                      metrics=Metrics())
    mini = MiniAppServices(store=store, bot_token=TOKEN, bot_username=lambda: "bot")
    client = TestClient(TestServer(create_api(api, miniapp=create_miniapp(mini))))
    await client.start_server()
    return client


async def held_ticket_of_rotating_event(store, **entry) -> int:
    await import_document(store, rotating_document(tickets=1, **entry))
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token, language_code="en")
    async with store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id))
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    return ticket_id


def auth(user: int = BUYER) -> dict[str, str]:
    return {"Authorization": "tma " + user_init_data(TOKEN, user, language_code="en")}


async def test_the_mini_app_gives_the_live_code_and_no_still_picture(store):
    ticket_id = await held_ticket_of_rotating_event(store)
    client = await mini_app_client(store)
    try:
        held = await (await client.get(f"/app/api/held/{ticket_id}", headers=auth())).json()
        picture = await client.get(f"/app/api/held/{ticket_id}/qr.png", headers=auth())
    finally:
        await client.close()
    assert held["rotating"] and held["barcode"] is None
    assert f"every {PERIOD} seconds" in held["hint"]
    live = held["live"]
    signed = entry_codes.SignedTicket(live["key_id"], live["ref"], live["token"],
                                      live["signature"], live["step_key"], live["period_seconds"])
    step = entry_codes.step_at(live["server_time_ms"] / 1000, PERIOD)
    code = entry_codes.parse(signed.code_at(step))
    async with store.read_connection() as connection:
        key = await entry_keys.key_of_code(connection, code.key_id)
    assert entry_codes.genuine(code, "fest-sat", key.public_key, key.step_secret)
    assert picture.status == 404


async def test_before_the_reveal_time_no_code_is_shown_only_when_it_will_be(store):
    # The sample event starts on 17 July 2027 at 14:00 in Paris; 720 hours is 30 days before.
    ticket_id = await held_ticket_of_rotating_event(store, reveal_hours_before=720)
    client = await mini_app_client(store)
    try:
        held = await (await client.get(f"/app/api/held/{ticket_id}", headers=auth())).json()
    finally:
        await client.close()
    assert held["live"] is None and held["barcode"] is None
    assert "Jun 17, 2027" in held["hint"] and "2:00" in held["hint"]
    async with store.read() as session:
        ticket = await session.get(Ticket, ticket_id)
    card = await held_card(store, BUYER, ticket_id)
    assert await entry_keys.live_ticket(store, card, ticket.updated_at) is None
    after = dt.datetime(2027, 6, 18, tzinfo=dt.UTC)
    assert await entry_keys.live_ticket(store, card, after) is not None


# --- ticketbot run ------------------------------------------------------------------------------


async def test_run_refuses_to_start_with_a_rotating_event_and_no_mini_app(store):
    await import_document(store, rotating_document(tickets=1))
    refusal = await cli.startup_refusal(Settings(token="123:abc"), store)
    assert "fest-sat" in refusal and "TICKETBOT_WEBAPP_URL" in refusal
    assert await cli.startup_refusal(Settings(token="123:abc", webapp_url=WEBAPP), store) is None


@pytest.mark.skipif(ON_POSTGRES, reason="the command reads its store from the URL alone")
async def test_the_run_command_stops_with_the_reason(store, capsys):
    await import_document(store, rotating_document(tickets=1))
    settings = Settings(token="123:abc", database_url=store.url)
    assert await cli.run_bot(settings, None) == 2
    error = capsys.readouterr().err
    assert "fest-sat" in error and "TICKETBOT_WEBAPP_URL" in error


async def test_on_the_event_day_the_reminder_links_to_the_live_ticket(mini_app_harness, store):
    harness = mini_app_harness
    await harness.import_orders(rotating_document(tickets=1))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="en")
    await buyer.start(await harness.order_link("DF-100000"))
    await claim_for_myself(buyer, name=None)
    await settle_changes(harness)
    since = max(m.message_id for m in buyer.messages)
    morning = dt.datetime(2027, 7, 17, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    harness.application.bot_data["worker"].clock = lambda: morning.astimezone(dt.UTC)
    await harness.run_background()
    assert buyer.find("Today is the day: Dreamfest 2027 — Saturday!").message_id > since
    [again] = [m for m in buyer.messages if m.message_id > since
               and "entry code is live" in (m.text or "")]
    assert not again.media
    async with store.read() as session:
        ticket_id = await session.scalar(select(Ticket.id))
    assert again.buttons[0][0].raw["web_app"]["url"] == f"{WEBAPP}/app/?ticket={ticket_id}"
