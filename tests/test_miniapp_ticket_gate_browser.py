"""The holder's ticket and the staff's gate view of the Mini App in a real browser (Debian's
headless Chromium, driven by Playwright), served by the bot's own HTTP server (``BotServer``,
as ``ticketbot run`` serves it, with ``TICKETBOT_STAFF_IDS`` set).

The ticket's QR picture is read back by a real decoder from the page's screenshot and from the
bytes the page fetched; the gate's scanner is Telegram's, played by the stand-in: the test
answers ``showScanQrPopup`` with a ticket's barcode and reads what the page shows.
"""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import func, select

from bot.http.server import BotServer
from bot.webapp.init_data import user_init_data
from storage import services
from storage.models import GateScan, Ticket
from storage.services.gate import scan_barcode
from tests.browser import DARK, chromium_missing, foreign_requests, mini_app_url
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness
from tests.ticket_helpers import barcodes_named, read_qr_codes

pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=chromium_missing() or "")

BUYER, STAFF = 1001, 4004
PUBLIC_URL = "https://tickets.example.org"


@pytest.fixture
async def served(store):
    """The bot's HTTP server (API + Mini App) on loopback, staff configured; one order of
    three tickets, the buyer's first ticket claimed in her name."""
    harness = await open_harness(store, webapp_url=PUBLIC_URL, staff_ids=frozenset({STAFF}))
    runner = web.AppRunner(BotServer(harness.settings, store, harness.application).web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    harness.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    await harness.import_orders(sample_document(tickets=3, language="fr"))
    await services.open_link(store, BUYER, await harness.order_link("DF-100000"),
                             language_code="fr")
    async with store.read() as session:
        harness.tickets = list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))
    await services.claim_for_myself(store, BUYER, harness.tickets[0], "Camille Martin")
    try:
        yield harness
    finally:
        await runner.cleanup()
        await close_harness(harness)


def signed(harness, user_id: int) -> str:
    return user_init_data(harness.settings.token, user_id, first_name="Camille",
                          language_code="fr")


async def barcode_of(store, ticket_id: int) -> str:
    async with store.read() as session:
        return await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket_id))


def decode(data: bytes) -> list[str]:
    return [found.text for found in read_qr_codes(Image.open(io.BytesIO(data)))]


# --- what the browser does (on its own thread) ----------------------------------------------


def show_ticket(page, ref: str) -> dict:
    """Open the held ticket from the home screen; the QR codes read from the screenshot of its
    picture and from the bytes the page fetched, and the card's text."""
    page.locator("body[data-ready]").wait_for()
    page.locator(f"[data-show='{ref}']").click()
    qr = page.locator("#ticket-qr[data-loaded]")
    qr.wait_for()
    # The picture as fetched, at its own size (the page's CSP lets it connect to its own origin
    # only, so it is read back through a canvas rather than fetched again from its blob URL).
    fetched = page.evaluate("""() => {
        const img = document.getElementById("ticket-qr");
        const canvas = document.createElement("canvas");
        canvas.width = img.naturalWidth;
        canvas.height = img.naturalHeight;
        canvas.getContext("2d").drawImage(img, 0, 0);
        return { src: img.src, png: canvas.toDataURL("image/png").split(",")[1] };
    }""")
    return {"shot": decode(qr.screenshot()), "fetched": decode(base64.b64decode(fetched["png"])),
            "src": fetched["src"], "text": page.locator("#app").inner_text()}


def download(page, which: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        page.locator(f"[data-file={which}]").click()
    done = info.value
    return done.suggested_filename, Path(done.path()).read_bytes()


def open_gate(page, gate: str) -> str:
    page.locator("body[data-ready]").wait_for()
    page.locator("#open-gate").click()
    page.get_by_label("Événement").select_option("fest-sat")
    page.get_by_label("Nom de la porte").fill(gate)
    page.get_by_role("button", name="📷 Commencer à scanner").click()
    page.wait_for_function("window.__telegramScannerOpen()")
    return page.locator("#app").inner_text()


def answer_scanner(page, code: str) -> dict:
    """Telegram's scanner reads ``code``: the page checks it and shows the verdict; then the
    next scan is opened."""
    assert page.evaluate("code => window.__telegramScanQr(code)", code) is True
    verdict = page.locator("#verdict")
    verdict.wait_for()
    seen = {"result": verdict.get_attribute("data-result"), "text": verdict.inner_text(),
            "popup_open": page.evaluate("window.__telegramScannerOpen()"),
            "closed_by_page": [c["method"] for c in page.evaluate("window.__telegramCalls")
                               ].count("closeScanQrPopup")}
    return seen


def lose_next_scan_answer(page) -> None:
    """The next scan reaches the server, but its answer is lost on the way back."""
    lost = []

    def handle(route) -> None:
        if lost:
            route.continue_()
            return
        route.fetch()  # the server scans...
        lost.append(True)
        route.abort()  # ...and the page never hears of it

    page.route("**/app/api/gate/scan", handle)


def retry(page) -> dict:
    page.locator("#retry").click()
    page.locator("#verdict[data-result=ok]").wait_for()
    return {"result": "ok", "text": page.locator("#verdict").inner_text()}


def scan_next(page) -> None:
    page.locator("#scan").click()
    page.wait_for_function("window.__telegramScannerOpen()")


def shot(page, path: Path) -> None:
    page.screenshot(path=str(path), full_page=True)


def close(page) -> None:
    page.context.close()


# --- the stories ---------------------------------------------------------------------------


async def test_holder_sees_her_ticket_qr_and_downloads_its_files(served, browser, tmp_path):
    code = await barcode_of(served.store, served.tickets[0])
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, BUYER)))
    seen = await browser.run(show_ticket, page, "T-DF-100000-1")
    assert await barcodes_named(served.store, seen["shot"]) == [code]
    assert await barcodes_named(served.store, seen["fetched"]) == [code]
    assert seen["src"].startswith("blob:")  # no file URL that opens without initData
    assert "Dreamfest 2027 — Saturday" in seen["text"]
    assert "sam. 17 juil. 2027, 14:00" in seen["text"]
    assert "Parc des Expositions, Nantes" in seen["text"]
    assert "Pass samedi — titulaire : Camille Martin" in seen["text"]
    assert "Référence : T-DF-100000-1" in seen["text"]
    await browser.run(shot, page, tmp_path / "miniapp-ticket-light-360.png")
    name, pdf = await browser.run(download, page, "pdf")
    assert name == "ticket-T-DF-100000-1.pdf" and pdf.startswith(b"%PDF")
    name, ics = await browser.run(download, page, "ics")
    assert name == "ticket-T-DF-100000-1.ics" and b"BEGIN:VCALENDAR" in ics
    assert foreign_requests(page, served.base) == []

    # The name is corrected in chat (a new barcode): on reload the page shows the new code.
    await services.rename_holder(served.store, BUYER, served.tickets[0], "Camille Dupont")
    new = await barcode_of(served.store, served.tickets[0])
    await browser.run(page.reload)
    seen = await browser.run(show_ticket, page, "T-DF-100000-1")
    assert await barcodes_named(served.store, seen["shot"]) == [new] and new != code

    # Let in at the gate: the ticket says it is used.
    await scan_barcode(served.store, new, "Nord", "browser-used-nonce-1", "test-gate",
                       event_id="fest-sat")
    await browser.run(page.reload)
    seen = await browser.run(show_ticket, page, "T-DF-100000-1")
    assert "Utilisé : entré le " in seen["text"] and "porte Nord" in seen["text"]
    # The buyer is not staff: no gate entry for her.
    await browser.run(page.reload)
    assert await browser.run(lambda: page.locator("#open-gate").count()) == 0
    await browser.run(close, page)

    dark = await browser.run(browser.open_page,
                             mini_app_url(served.base, signed(served, BUYER), theme=DARK))
    seen = await browser.run(show_ticket, dark, "T-DF-100000-1")
    # black on white whatever the theme
    assert await barcodes_named(served.store, seen["shot"]) == [new]
    await browser.run(shot, dark, tmp_path / "miniapp-ticket-dark-360.png")
    await browser.run(close, dark)


async def test_staff_scan_tickets_with_telegrams_scanner(served, browser, tmp_path):
    first = await barcode_of(served.store, served.tickets[0])
    second = served.tickets[1]
    await services.claim_for_myself(served.store, BUYER, second, "Alex Dupont")
    rotated = await barcode_of(served.store, second)
    await services.rename_holder(served.store, BUYER, second, "Sacha Dupont")

    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, STAFF)))
    setup = await browser.run(open_gate, page, "Nord")
    assert "Dreamfest 2027 — Saturday — porte Nord" in setup

    # The first answer is lost: the page offers to check again, with the same nonce, and the
    # server gives the first answer again (ok), having scanned the ticket once.
    await browser.run(lose_next_scan_answer, page)
    lost = await browser.run(answer_scanner, page, first)
    assert lost["result"] == "error" and "connexion" in lost["text"]
    async with served.store.read() as session:
        assert await session.scalar(select(func.count()).select_from(GateScan)) == 1
    ok = await browser.run(retry, page)
    assert "Entrée autorisée" in ok["text"]
    async with served.store.read() as session:
        assert await session.scalar(select(func.count()).select_from(GateScan)) == 1
    assert "Pass samedi — Camille Martin" in ok["text"]
    assert lost["popup_open"] is False and lost["closed_by_page"] == 1
    await browser.run(shot, page, tmp_path / "miniapp-gate-ok-light-360.png")

    await browser.run(scan_next, page)
    again = await browser.run(answer_scanner, page, first)
    assert again["result"] == "already_scanned" and "Déjà scanné" in again["text"]
    assert "Déjà entré le " in again["text"] and "porte Nord" in again["text"]

    await browser.run(scan_next, page)
    void = await browser.run(answer_scanner, page, rotated)
    assert void["result"] == "void" and "Billet annulé" in void["text"]
    await browser.run(shot, page, tmp_path / "miniapp-gate-void-light-360.png")

    await browser.run(scan_next, page)
    unknown = await browser.run(answer_scanner, page, "0000111122223333")
    assert unknown["result"] == "unknown" and "Code inconnu" in unknown["text"]
    assert foreign_requests(page, served.base) == []
    await browser.run(close, page)

    dark = await browser.run(browser.open_page,
                             mini_app_url(served.base, signed(served, STAFF), theme=DARK))
    await browser.run(open_gate, dark, "Sud")
    seen = await browser.run(answer_scanner, dark, first)
    assert seen["result"] == "already_scanned" and "porte Nord" in seen["text"]
    await browser.run(shot, dark, tmp_path / "miniapp-gate-dark-360.png")
    await browser.run(close, dark)


def type_code(page, code: str) -> dict:
    """A person at a desktop types the code into the stand-in's scanner box and presses Enter."""
    field = page.locator("#stand-in-scanner input[name=code]")
    field.fill(code)
    field.press("Enter")
    verdict = page.locator("#verdict")
    verdict.wait_for()
    return {"result": verdict.get_attribute("data-result"), "text": verdict.inner_text(),
            "popup_open": page.evaluate("window.__telegramScannerOpen()"),
            "boxes": page.locator("#stand-in-scanner").count()}


def cancel_scan(page) -> dict:
    page.get_by_role("button", name="Cancel").click()
    return {"popup_open": page.evaluate("window.__telegramScannerOpen()"),
            "boxes": page.locator("#stand-in-scanner").count()}


async def test_on_a_desktop_the_stand_in_scanner_takes_a_typed_code(served, browser):
    code = await barcode_of(served.store, served.tickets[0])
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, STAFF)))
    await browser.run(open_gate, page, "Sud")
    typed = await browser.run(type_code, page, f"  {code} ")
    assert typed["result"] == "ok" and "Entrée autorisée" in typed["text"]
    assert "Pass samedi — Camille Martin" in typed["text"]
    assert typed["popup_open"] is False and typed["boxes"] == 0
    await browser.run(scan_next, page)
    assert await browser.run(cancel_scan, page) == {"popup_open": False, "boxes": 0}
    assert foreign_requests(page, served.base) == []
    await browser.run(close, page)
