"""The Mini App's holder ticket and staff gate over real HTTP (aiohttp's test server, mounted as
``ticketbot run`` mounts it) on the real store: a holder sees their ticket, its QR picture (read
back with a real decoder), PDF and calendar entry, and nobody else does; a staff member scans
through the same gate service as the HTTP gate API (ok, already scanned, void, unknown, nonces),
and anyone else is refused and records nothing."""

from __future__ import annotations

import asyncio
import io

import icalendar
import pypdf
import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import func, select

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from bot.webapp import MiniAppServices, create_miniapp
from bot.webapp.init_data import user_init_data
from storage import services
from storage.db.store import Store
from storage.models import AuditEntry, GateScan, Ticket
from storage.services.importing.importer import import_document
from tests.conftest import sample_document
from tests.ticket_helpers import barcodes_named, read_qr_codes

TOKEN = "123456:TEST-TOKEN"
BUYER, STRANGER, STAFF = 1001, 2002, 4004


@pytest.fixture
async def client(store: Store):
    await import_document(store, sample_document(orders=2, tickets=3, language="fr"))
    for user, number in ((BUYER, "DF-100000"), (STRANGER, "DF-100001")):
        token = await services.create_order_link(store, number)
        await services.open_link(store, user, token, language_code="fr")
    api = ApiServices(store=store, api_token="api-token", bot_username=lambda: "ticketbot_test_bot",
                      metrics=Metrics())
    mini = MiniAppServices(store=store, bot_token=TOKEN, bot_username=lambda: "ticketbot_test_bot",
                           staff_ids=frozenset({STAFF}))
    async with TestClient(TestServer(create_api(api, miniapp=create_miniapp(mini)))) as client:
        yield client


def auth(user: int = BUYER, language_code: str = "fr") -> dict[str, str]:
    return {"Authorization": "tma " + user_init_data(TOKEN, user, language_code=language_code)}


async def tickets_of(store: Store, order_number: str) -> list[int]:
    async with store.read() as session:
        return list(await session.scalars(
            select(Ticket.id).where(Ticket.ref.like(f"T-{order_number}-%")).order_by(Ticket.id)))


async def barcode_of(store: Store, ticket_id: int) -> str:
    async with store.read() as session:
        return await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket_id))


async def count_scans(store: Store) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(GateScan))


def decode_qr(data: bytes) -> list[str]:
    return [found.text for found in read_qr_codes(Image.open(io.BytesIO(data)))]


async def claimed(store: Store) -> int:
    ticket_id = (await tickets_of(store, "DF-100000"))[0]
    await services.claim_for_myself(store, BUYER, ticket_id, "Camille Martin")
    return ticket_id


# --- the holder's ticket --------------------------------------------------------------------


async def test_holder_sees_the_ticket_its_qr_pdf_and_calendar_entry(client, store):
    ticket_id = await claimed(store)
    code = await barcode_of(store, ticket_id)
    start = await (await client.get("/app/api/start", headers=auth())).json()
    assert [held["id"] for held in start["home"]["held"]] == [ticket_id]
    assert start["staff"] is False
    menu = await (await client.get(f"/app/api/tickets/{ticket_id}", headers=auth())).json()
    assert menu["held"] is True

    answer = await client.get(f"/app/api/held/{ticket_id}", headers=auth())
    assert answer.status == 200 and answer.headers["Cache-Control"] == "no-store"
    held = await answer.json()
    assert held["event"] == "Dreamfest 2027 — Saturday"
    assert held["when"] == "sam. 17 juil. 2027, 14:00"  # in the event's zone, in French
    assert held["venue"] == "Parc des Expositions, Nantes"
    assert held["lines"] == ["Pass samedi — titulaire : Camille Martin",
                             f"Référence : {held['ref']}"]
    assert held["barcode"] == code and held["used"] is None

    picture = await client.get(f"/app/api/held/{ticket_id}/qr.png", headers=auth())
    assert picture.status == 200 and picture.content_type == "image/png"
    assert await barcodes_named(store, decode_qr(await picture.read())) == [code]

    pdf = await client.get(f"/app/api/held/{ticket_id}/ticket.pdf", headers=auth())
    assert pdf.status == 200 and pdf.content_type == "application/pdf"
    assert "attachment" in pdf.headers["Content-Disposition"]
    text = pypdf.PdfReader(io.BytesIO(await pdf.read())).pages[0].extract_text()
    assert code in text and "Camille Martin" in text and "Catégorie" in text

    ics = await client.get(f"/app/api/held/{ticket_id}/ticket.ics", headers=auth())
    assert ics.status == 200 and ics.content_type == "text/calendar"
    entry = icalendar.Calendar.from_ical(await ics.read()).walk("VEVENT")[0]
    assert str(entry["SUMMARY"]) == "Dreamfest 2027 — Saturday"
    assert entry.decoded("DTSTART").isoformat() == "2027-07-17T14:00:00+02:00"


async def test_nobody_but_the_holder_gets_the_ticket_or_its_files(client, store):
    ticket_id = await claimed(store)
    unassigned = (await tickets_of(store, "DF-100000"))[1]
    paths = ("", "/qr.png", "/ticket.pdf", "/ticket.ics")
    for path in paths:
        # Another user (even one with an order of their own), and staff: not their ticket.
        for user in (STRANGER, STAFF):
            refused = await client.get(f"/app/api/held/{ticket_id}{path}", headers=auth(user))
            assert refused.status == 404
            body = await refused.json()
            assert body["error"] == "ticket_not_held" and "à votre nom" in body["message"]
        # The buyer's own ticket not (yet) in her name, a made-up id, and no initData at all.
        for wrong in (unassigned, 99999, "x1"):
            answer = await client.get(f"/app/api/held/{wrong}{path}", headers=auth())
            assert answer.status == 404
        anonymous = await client.get(f"/app/api/held/{ticket_id}{path}")
        assert anonymous.status == 401


async def test_a_changed_barcode_shows_the_new_one_and_a_used_ticket_says_so(client, store):
    ticket_id = await claimed(store)
    old = await barcode_of(store, ticket_id)
    await services.rename_holder(store, BUYER, ticket_id, "Alex Dupont")
    new = await barcode_of(store, ticket_id)
    assert new != old
    held = await (await client.get(f"/app/api/held/{ticket_id}", headers=auth())).json()
    assert held["barcode"] == new and held["lines"][0].endswith("Alex Dupont")
    picture = await client.get(f"/app/api/held/{ticket_id}/qr.png", headers=auth())
    assert await barcodes_named(store, decode_qr(await picture.read())) == [new]

    scanned = await staff_scan(client, new, nonce="used-ticket-nonce-1")
    assert scanned["result"] == "ok"
    held = await (await client.get(f"/app/api/held/{ticket_id}", headers=auth())).json()
    assert held["used"].startswith("Utilisé : entré le ") and held["used"].endswith(
        ", porte Nord.")


async def test_the_menu_of_a_used_ticket_says_when_it_was_scanned_like_the_chat(client, store):
    ticket_id = await claimed(store)
    await staff_scan(client, await barcode_of(store, ticket_id), nonce="used-menu-nonce-01")
    menu = await (await client.get(f"/app/api/tickets/{ticket_id}", headers=auth())).json()
    assert menu["summary"][-1].startswith("Utilisé : scanné à l’entrée le ")
    # Whatever the event's rules, a used ticket says only that it offers nothing more.
    assert menu["actions"] == []
    assert menu["notes"] == [
        "Un billet utilisé ne peut plus être transféré, revendu, échangé ni changer de nom."]


# --- the staff's gate -----------------------------------------------------------------------


async def staff_scan(client: TestClient, barcode: str, *, nonce: str, user: int = STAFF,
                     gate: str = "Nord", event: str = "fest-sat", status: int = 200) -> dict:
    answer = await client.post("/app/api/gate/scan", headers=auth(user), json={
        "barcode": barcode, "gate": gate, "nonce": nonce, "event": event})
    assert answer.status == status
    return await answer.json()


async def test_staff_scans_ok_then_already_scanned_void_and_unknown(client, store):
    ticket_id = await claimed(store)
    start = await (await client.get("/app/api/start", headers=auth(STAFF))).json()
    assert start["staff"] is True and start["strings"]["gate"] == "🚪 Contrôle (équipe)"
    view = await (await client.get("/app/api/gate", headers=auth(STAFF))).json()
    assert [event["id"] for event in view["events"]] == ["fest-sat", "fest-sun"]
    assert view["strings"]["title"] == "Contrôle"

    code = await barcode_of(store, ticket_id)
    first = await staff_scan(client, code, nonce="scan-nonce-0000001")
    assert first["result"] == "ok" and first["headline"] == "✅ Entrée autorisée"
    assert first["lines"][0] == "Pass samedi — Camille Martin"
    again = await staff_scan(client, code, nonce="scan-nonce-0000002", gate="Sud")
    assert again["result"] == "already_scanned" and again["headline"] == "⚠️ Déjà scanné"
    assert again["lines"][0] == "Pass samedi — Camille Martin"
    assert again["lines"][1].startswith("Déjà entré le ") and "porte Nord" in again["lines"][1]

    other = (await tickets_of(store, "DF-100000"))[1]
    await services.claim_for_myself(store, BUYER, other, "Alex Dupont")
    rotated = await barcode_of(store, other)
    await services.rename_holder(store, BUYER, other, "Sacha Dupont")
    void = await staff_scan(client, rotated, nonce="scan-nonce-0000003")
    assert void["result"] == "void" and void["headline"] == "⛔ Billet annulé"
    unknown = await staff_scan(client, "0000111122223333", nonce="scan-nonce-0000004")
    assert unknown["result"] == "unknown" and unknown["headline"] == "❓ Code inconnu"
    # A ticket of another event than the one the gate admits to is unknown here, not used up.
    sunday = await staff_scan(client, await barcode_of(store, (await tickets_of(
        store, "DF-100001"))[0]), nonce="scan-nonce-0000005", event="fest-sun")
    assert sunday["result"] == "unknown"

    # In the staff member's own language (English app), times by Babel in the event's zone.
    english = await client.post("/app/api/gate/scan", headers=auth(STAFF, "en"), json={
        "barcode": code, "gate": "Nord", "nonce": "scan-nonce-0000006", "event": "fest-sat"})
    said = await english.json()
    assert said["headline"] == "⚠️ Already scanned"
    assert said["lines"][1].startswith("Already let in on ") and "gate Nord" in said["lines"][1]

    # Every scan is in the audit history, under the staff member's device.
    async with store.read() as session:
        entries = (await session.scalars(select(AuditEntry).where(
            AuditEntry.action.like("gate_%")).order_by(AuditEntry.id))).all()
        devices = set(await session.scalars(select(GateScan.device)))
    assert [entry.action for entry in entries] == [
        "gate_ok", "gate_already_scanned", "gate_void", "gate_unknown", "gate_unknown",
        "gate_already_scanned"]
    assert devices == {f"staff-{STAFF}"}


async def test_a_repeated_nonce_gets_the_same_answer_and_scans_once(client, store):
    ticket_id = await claimed(store)
    code = await barcode_of(store, ticket_id)
    answers = await asyncio.gather(*(staff_scan(client, code, nonce="same-nonce-000001")
                                     for _ in range(5)))
    assert all(answer == answers[0] for answer in answers) and answers[0]["result"] == "ok"
    assert await count_scans(store) == 1
    reused = await staff_scan(client, "0000111122223333", nonce="same-nonce-000001",
                              status=409)
    assert reused["error"] == "nonce_reused"
    assert await count_scans(store) == 1


async def test_non_staff_are_refused_and_nothing_is_scanned(client, store):
    ticket_id = await claimed(store)
    code = await barcode_of(store, ticket_id)
    for user in (BUYER, STRANGER):
        view = await client.get("/app/api/gate", headers=auth(user))
        assert view.status == 403
        assert (await view.json())["message"] == "Cette vue est réservée à l'équipe de l'événement."
        await staff_scan(client, code, nonce="stranger-nonce-01", user=user, status=403)
    assert (await client.post("/app/api/gate/scan", json={"barcode": code})).status == 401
    assert await count_scans(store) == 0
    async with store.read() as session:
        ticket = await session.get(Ticket, ticket_id)
        assert ticket.used_at is None
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action.like("gate_%"))) == 0


async def test_bad_scans_get_a_clear_answer_and_change_nothing(client, store):
    await claimed(store)
    for body, field in (({"barcode": "", "gate": "Nord", "event": "fest-sat"}, "barcode"),
                        ({"barcode": "1" * 257, "gate": "Nord", "event": "fest-sat"}, "barcode"),
                        ({"barcode": "123", "gate": " ", "event": "fest-sat"}, "gate"),
                        ({"barcode": "123", "gate": "Nord", "event": "nope"}, "event")):
        answer = await client.post("/app/api/gate/scan", headers=auth(STAFF),
                                   json={**body, "nonce": "bad-scan-nonce-01"})
        assert answer.status == 422
        said = await answer.json()
        assert said["field"] == field and said["message"]
    no_nonce = await client.post("/app/api/gate/scan", headers=auth(STAFF), json={
        "barcode": "123", "gate": "Nord", "event": "fest-sat"})
    assert no_nonce.status == 400
    assert await count_scans(store) == 0
