"""Dutch, the third language, end to end: a Telegram user whose app is Dutch opens a French
order and reads Dutch everywhere — the chat (overview, ticket menu, a flow), the Mini App's
screens, the HTTP API, the mails they send and receive, and the ticket files (PDF, .ics). The
event's words given per language are read in Dutch too."""

from __future__ import annotations

import copy
import io
import re

import icalendar
import pypdf
import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from storage import services
from storage.db.store import Store
from storage.services.importing.importer import import_document
from tests.conftest import sample_document
from tests.ticket_helpers import newest_id, next_picture

BUYER = 1001
LINK = re.compile(r"https://t\.me/ticketbot_test_bot\?start=([A-Za-z0-9_-]+)")
DUTCH_NAME = "Dreamfest 2027 — Zaterdag"
WHEN = "za 17 jul 2027, 14:00"
TOKEN = "123456:TEST-TOKEN"


def french_order() -> dict:
    """A French buyer's order; its event and category are named per language."""
    document = sample_document(tickets=3, language="fr")
    saturday = document["events"][0]
    saturday["name"] = {"fr": "Dreamfest 2027 — Samedi", "en": "Dreamfest 2027 — Saturday",
                        "nl": DUTCH_NAME}
    for ticket in document["orders"][0]["tickets"]:
        ticket["category"] = {"fr": "Pass samedi", "nl": "Zaterdagpas"}
    return copy.deepcopy(document)


async def open_as_dutch_user(harness):
    await harness.import_orders(french_order())
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="nl")
    overview = await buyer.start(await harness.order_link("DF-100000"))
    return buyer, overview


async def mail_to(harness, recipient: str):
    """The next mail to ``recipient`` (others are set aside for later calls)."""
    while True:
        mail = await harness.next_mail()
        if mail["To"] == recipient:
            return mail
        harness.mail.messages.append(mail)


async def press_for_file(buyer, label: str, picture, extension: str):
    """Press a button under the ticket picture and wait for the file it sends (which may come
    after the bot answered the button, when the machine is busy)."""
    mark = buyer.mark()
    await buyer.press(label, message=picture)
    return await buyer.wait_for_message(
        lambda m: bool(m.media) and m.media.get("file_name", "").endswith(extension), since=mark)


def subject(mail) -> str:
    """The subject as read, whatever spaces the folding of a long header left."""
    return " ".join(mail["Subject"].split())


def plain_body(mail) -> str:
    return mail.get_body(("plain",)).get_content()


# --- the chat -------------------------------------------------------------------------------


async def test_a_dutch_app_reads_a_french_order_in_dutch(harness):
    buyer, overview = await open_as_dutch_user(harness)
    text = overview.text
    for expected in ("Mijn bestelling DF-100000", DUTCH_NAME, WHEN, "Op naam te zetten (3)"):
        assert expected in text
    assert "Ma commande" not in text and "My order" not in text

    menu = await buyer.press("T-DF-100000-1")
    assert {"👤 Persoonlijk maken", "💶 Doorverkopen", "🔁 Ruilen"} <= set(
        menu.last.button_texts())

    await buyer.press("Terug naar mijn bestelling")
    more = await buyer.press("Meer acties")
    assert "Taal: Nederlands" in more.text
    assert "✓ Nederlands" in more.last.button_texts()


async def test_claiming_in_dutch_brings_dutch_ticket_files_and_mail(harness):
    buyer, _ = await open_as_dutch_user(harness)
    since = newest_id(buyer)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Persoonlijk maken")
    asked = await buyer.press("Ticket voor mezelf claimen")
    assert "Camille Martin" in asked.text and "Bevestig" in asked.text
    done = await buyer.press("Bevestigen")
    assert "Afgerond (1)" in done.text

    picture = await next_picture(harness, buyer, since=since)
    assert WHEN in picture.text and "Zaterdagpas" in picture.text
    assert picture.button_texts() == ["📄 Pdf-ticket", "📅 Toevoegen aan agenda"]

    document = await press_for_file(buyer, "Pdf-ticket", picture, ".pdf")
    pdf = pypdf.PdfReader(io.BytesIO(harness.emulator.media.content(document.media["file_id"])))
    text = pdf.pages[0].extract_text()
    for expected in ("E-ticket — toon deze pagina", "Tickethouder", "Zaterdagpas", DUTCH_NAME,
                     "Camille Martin", "89,00"):
        assert expected in text

    entry = await press_for_file(buyer, "agenda", picture, ".ics")
    calendar = icalendar.Calendar.from_ical(harness.emulator.media.content(entry.media["file_id"]))
    (event,) = calendar.walk("VEVENT")
    assert str(event["summary"]) == DUTCH_NAME
    assert "Op naam van: Camille Martin" in str(event["description"])

    mail = await mail_to(harness, "camille0@example.org")
    assert subject(mail) == f"Je ticket voor {DUTCH_NAME}"
    assert mail["Content-Language"] == "nl, en"
    body = plain_body(mail)
    assert body.index(f"Hier is je ticket voor {DUTCH_NAME}.") < body.index(
        "Here is your ticket for Dreamfest 2027 — Saturday.")
    attached = {part.get_filename(): part for part in mail.iter_attachments()}
    pdf = pypdf.PdfReader(io.BytesIO(attached["ticket-T-DF-100000-1.pdf"].get_content()))
    assert "Tickethouder" in pdf.pages[0].extract_text()


async def test_the_invitation_a_dutch_buyer_sends_is_in_dutch(harness):
    buyer, _ = await open_as_dutch_user(harness)
    await buyer.press("T-DF-100000-2")
    await buyer.press("Persoonlijk maken")
    asked = await buyer.press("Naar een vriend sturen")
    assert "e-mailadres van je vriend" in asked.text
    await buyer.send("alex@example.org")
    mark = buyer.mark()
    sent = await buyer.press("Versturen")
    assert "Openstaand (1)" in sent.text
    forward = await buyer.wait_for_message(lambda m: LINK.search(m.text) is not None, since=mark)
    assert "Je kunt dit bericht ook in Telegram doorsturen" in forward.text

    mail = await mail_to(harness, "alex@example.org")
    assert subject(mail) == f"Camille Martin heeft je een ticket gestuurd voor {DUTCH_NAME}"
    assert mail["Content-Language"] == "nl, en"
    body = plain_body(mail)
    assert body.index("Camille Martin heeft je een ticket gestuurd") < body.index(
        "Camille Martin sent you a ticket")


# --- the Mini App and the HTTP API -------------------------------------------------------------


@pytest.fixture
async def client(store: Store):
    await import_document(store, french_order())
    token = await services.create_order_link(store, "DF-100000")
    await services.open_link(store, BUYER, token, language_code="nl")
    api = ApiServices(store=store, api_token="api-token",
                      bot_username=lambda: "ticketbot_test_bot", metrics=Metrics())
    mini = MiniAppServices(store=store, bot_token=TOKEN,
                           bot_username=lambda: "ticketbot_test_bot")
    async with TestClient(TestServer(create_api(api, miniapp=create_miniapp(mini)))) as client:
        yield client


def dutch_app() -> dict[str, str]:
    return {"Authorization": "tma " + user_init_data(TOKEN, BUYER, language_code="nl")}


async def test_the_mini_app_speaks_dutch_to_a_dutch_app(client):
    body = await (await client.get("/app/api/start", headers=dutch_app())).json()
    assert body["language"] == "nl"
    order = body["order"]
    assert order["title"] == "Mijn bestelling DF-100000"
    assert order["events"][0]["when"] == WHEN
    assert order["sections"][0]["title"] == "Op naam te zetten (3)"
    assert body["strings"]["claim_self"].endswith("Ticket voor mezelf claimen")
    assert {"code": "nl", "name": "Nederlands", "current": True} in order["more"]["languages"]

    ticket = order["sections"][0]["tickets"][0]["id"]
    menu = await (await client.get(f"/app/api/tickets/{ticket}", headers=dutch_app())).json()
    assert [a["action"] for a in menu["actions"]] == ["assign", "sell", "exchange"]
    claimed = await client.post(f"/app/api/tickets/{ticket}/claim", headers=dutch_app(),
                                json={"action_id": "dutch-action-00000001",
                                      "name": "Camille Martin"})
    assert claimed.status == 200
    assert "Afgerond (1)" in [s["title"] for s in (await claimed.json())["order"]["sections"]]


async def test_the_http_api_and_its_csv_speak_dutch_when_asked(client):
    bearer = {"Authorization": "Bearer api-token"}
    answer = await client.get("/api/orders/DF-100000",
                              headers={**bearer, "Accept-Language": "nl-NL,nl;q=0.9,en;q=0.5"})
    assert answer.status == 200 and answer.headers["Content-Language"] == "nl"
    csv = await (await client.get("/api/events/fest-sat/tickets.csv?lang=nl",
                                  headers=bearer)).text()
    assert csv.splitlines()[0].lstrip("\ufeff").startswith("Referentie,Bestelling,Categorie")
    assert "Zaterdagpas" in csv and "op naam te zetten" in csv
