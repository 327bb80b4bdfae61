"""Rotating codes and the offline gate in a real browser (Debian's headless Chromium, driven by
Playwright), served by the bot's own HTTP server.

The holder's page draws the live code, read back from its screenshot by a real decoder, and
draws a new one each period; the gate scans it ``ok``. The staff's gate view, its network cut
with Playwright's ``set_offline``, decides by itself with the keys and voids it synced: it lets
in a live code, refuses a void one and a made-up one, queues the scans, and once the network is
back the server has them, with the double entry another gate made meanwhile flagged. A static
event's signed codes are checked offline the same way, with no time step.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest
from aiohttp import web
from PIL import Image
from sqlalchemy import func, select

from bot.http.server import BotServer
from bot.webapp.init_data import user_init_data
from storage import entry_codes, services, ticket_delivery
from storage.db.store import utcnow
from storage.models import GateScan, Ticket
from storage.services import entry_keys
from storage.services.gate import scan_barcode
from tests.browser import DARK, chromium_missing, foreign_requests, mini_app_url
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness
from tests.test_buyer_flow import eventually
from tests.test_miniapp_ticket_gate_browser import answer_scanner, open_gate, scan_next
from tests.test_rotating_entry import rotating_document
from tests.ticket_helpers import read_qr_codes

pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=chromium_missing() or "")

BUYER, STAFF = 1001, 4004
PERIOD = 5  # the shortest a policy allows: the test sees the code change
SHOTS = Path(os.environ.get("TICKETBOT_SCREENSHOTS", "")) if os.environ.get(
    "TICKETBOT_SCREENSHOTS") else None


@pytest.fixture
async def served(store):
    """The bot's HTTP server on loopback; a rotating event, one order of three tickets, the
    first two claimed by the buyer."""
    harness = await open_harness(store, webapp_url="https://tickets.example.org",
                                 staff_ids=frozenset({STAFF}))
    runner = web.AppRunner(BotServer(harness.settings, store, harness.application).web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    harness.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    document = rotating_document(tickets=3)
    document["events"][0]["entry"]["period_seconds"] = PERIOD
    await harness.import_orders(document)
    await services.open_link(store, BUYER, await harness.order_link("DF-100000"),
                             language_code="fr")
    async with store.read() as session:
        harness.tickets = list(await session.scalars(select(Ticket.id).order_by(Ticket.id)))
    for ticket_id, name in zip(harness.tickets[:2], ("Camille Martin", "Alex Dupont"),
                               strict=True):
        await services.claim_for_myself(store, BUYER, ticket_id, name)
    try:
        yield harness
    finally:
        await runner.cleanup()
        await close_harness(harness)


def signed(harness, user_id: int) -> str:
    return user_init_data(harness.settings.token, user_id, first_name="Camille",
                          language_code="fr")


def live_code(page, ref: str, after_step: int | None = None) -> dict:
    """Open the held ticket; wait for a live code (drawn after ``after_step``), decode it from
    the screenshot of the canvas."""
    page.locator("body[data-ready]").wait_for()
    if page.locator("#live-code").count() == 0:
        page.locator(f"[data-show='{ref}']").click()
    page.locator("#live-code[data-code]").wait_for()
    box = page.locator("#live-code")
    # The page's CSP allows no eval, which wait_for_function's polling needs: poll from here.
    for _ in range(PERIOD * 3 * 5):
        if after_step is None or int(box.get_attribute("data-step")) > after_step:
            break
        page.wait_for_timeout(200)
    # The code may turn over between reading its text and taking the picture: take both again
    # until the code is the same before and after the picture.
    for _ in range(3):
        code, step = box.get_attribute("data-code"), int(box.get_attribute("data-step"))
        shot = page.locator("#live-qr").screenshot()
        if box.get_attribute("data-code") == code:
            break
    decoded = [found.text for found in read_qr_codes(Image.open(io.BytesIO(shot)))]
    return {"code": code, "step": step, "decoded": decoded,
            "moving": page.locator(".live-sweep").count(),
            "clock": page.locator(".live-clock").inner_text(),
            "text": page.locator("#app").inner_text()}


def shot(page, name: str) -> None:
    if SHOTS is not None:
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / name), full_page=True)


def wait_for_kit(page) -> None:
    for _ in range(50):
        if page.evaluate("() => !!window.localStorage.getItem('ticketbot-kit-fest-sat')"):
            return
        page.wait_for_timeout(100)
    raise AssertionError("the gate view never kept the entry kit")


def set_offline(page, offline: bool) -> None:
    page.context.set_offline(offline)


def waiting(page) -> int | None:
    status = page.locator("#offline-status")
    value = status.get_attribute("data-waiting") if status.count() else None
    return int(value) if value is not None else None


def conflicts_shown(page) -> list[str]:
    page.locator("[data-conflict]").first.wait_for(timeout=10_000)
    return page.locator("[data-conflict]").all_inner_texts()


async def test_the_holder_page_draws_a_live_code_that_changes_each_period(served, browser):
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, BUYER)))
    first = await browser.run(live_code, page, "T-DF-100000-1")
    assert first["decoded"] == [first["code"]] and first["code"].startswith("TB1.")
    assert first["moving"] == 1 and first["clock"]
    barcode = await _barcode(served.store, served.tickets[0])
    assert barcode not in first["text"]
    await browser.run(shot, page, "live-ticket-light-360.png")
    second = await browser.run(live_code, page, "T-DF-100000-1", first["step"])
    assert second["decoded"] == [second["code"]] and second["code"] != first["code"]
    # The page's code is what the gate takes: the one on screen now gets in.
    on_screen = await browser.run(page.locator("#live-code").get_attribute, "data-code")
    answer = await scan_barcode(served.store, on_screen, "Nord", "page-code-1", "test",
                                event_id="fest-sat")
    assert answer.result == "ok"
    assert foreign_requests(page, served.base) == []
    await browser.run(lambda: page.context.close())

    dark = await browser.run(browser.open_page,
                             mini_app_url(served.base, signed(served, BUYER), theme=DARK))
    seen = await browser.run(live_code, dark, "T-DF-100000-2")
    assert seen["decoded"] == [seen["code"]]  # black on white whatever the theme
    await browser.run(shot, dark, "live-ticket-dark-360.png")
    await browser.run(lambda: dark.context.close())


async def _barcode(store, ticket_id: int) -> str:
    async with store.read() as session:
        return await session.scalar(select(Ticket.barcode).where(Ticket.id == ticket_id))


async def _at_least(store, count: int) -> bool:
    return await count_scans(store, offline=True) >= count


async def count_scans(store, **where) -> int:
    async with store.read() as session:
        query = select(func.count()).select_from(GateScan)
        for name, value in where.items():
            query = query.where(getattr(GateScan, name) == value)
        return await session.scalar(query)


async def test_the_gate_view_decides_offline_and_uploads_when_the_network_is_back(
        served, browser):
    first, second = served.tickets[:2]
    void = await entry_keys.signed_ticket(served.store, second)
    await services.rename_holder(served.store, BUYER, second, "Sacha Dupont")
    live = await entry_keys.signed_ticket(served.store, first)
    now_step = entry_codes.step_at(utcnow().timestamp(), PERIOD)
    made_up = live.code_at(now_step)[:-8] + "00000000"

    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, STAFF)))
    await browser.run(open_gate, page, "Champ")
    await browser.run(wait_for_kit, page)
    await browser.run(set_offline, page, True)

    def current(signed_ticket):
        return signed_ticket.code_at(entry_codes.step_at(utcnow().timestamp(), PERIOD))

    ok = await browser.run(answer_scanner, page, current(live))
    assert ok["result"] == "ok"
    await browser.run(shot, page, "gate-offline-ok-360.png")
    results = []
    for code in (current(void), made_up, current(live)):
        await browser.run(scan_next, page)
        results.append((await browser.run(answer_scanner, page, code))["result"])
    assert results == ["void", "unknown", "already_scanned"]
    assert await browser.run(waiting, page) == 4
    assert await count_scans(served.store) == 0  # nothing reached the server

    # Meanwhile another gate, online, lets the same ticket in: a double entry.
    other = await scan_barcode(served.store, current(live), "Sud", "other-gate-1", "gate-sud",
                               event_id="fest-sat")
    assert other.result == "ok"

    await browser.run(set_offline, page, False)
    await browser.run(page.evaluate, "window.dispatchEvent(new Event('online'))")
    shown = await browser.run(conflicts_shown, page)
    assert any("Sud" in text for text in shown)
    await browser.run(shot, page, "gate-conflict-360.png")
    await eventually(lambda: _at_least(served.store, 4), within=10)
    assert await count_scans(served.store, offline=True) == 4
    assert await count_scans(served.store, result="ok") == 1
    assert await count_scans(served.store, conflict=True) == 1
    async with served.store.read() as session:
        stepped_down = await session.scalar(select(GateScan.gate).where(GateScan.conflict))
    assert stepped_down == "Sud"  # the later entry is the conflict
    assert await browser.run(waiting, page) in (None, 0)
    await browser.run(lambda: page.context.close())


@pytest.fixture
async def served_static(store):
    """The bot's HTTP server on loopback; a static event (the default), one order of three
    tickets, the first two claimed by the buyer."""
    harness = await open_harness(store, webapp_url="https://tickets.example.org",
                                 staff_ids=frozenset({STAFF}))
    runner = web.AppRunner(BotServer(harness.settings, store, harness.application).web_app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    harness.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    await harness.import_orders(sample_document(orders=1, tickets=3))
    await services.open_link(store, BUYER, await harness.order_link("DF-100000"),
                             language_code="fr")
    async with store.read() as session:
        harness.tickets = list(await session.scalars(
            select(Ticket.id).where(Ticket.event_id == "fest-sat").order_by(Ticket.id)))
    for ticket_id, name in zip(harness.tickets[:2], ("Camille Martin", "Alex Dupont"),
                               strict=True):
        await services.claim_for_myself(store, BUYER, ticket_id, name)
    try:
        yield harness
    finally:
        await runner.cleanup()
        await close_harness(harness)


async def _signed_code(store, ticket_id: int) -> str:
    return (await ticket_delivery.held_card(store, BUYER, ticket_id)).signed_code


async def test_the_gate_view_checks_a_static_events_signed_codes_offline(served_static,
                                                                          browser):
    served = served_static
    first, second = served.tickets[:2]
    void = await _signed_code(served.store, second)
    await services.rename_holder(served.store, BUYER, second, "Sacha Dupont")
    code = await _signed_code(served.store, first)
    head, signature = code.rsplit(".", 1)
    made_up = f"{head}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    typed = await _barcode(served.store, first)

    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served, STAFF)))
    await browser.run(open_gate, page, "Champ")
    await browser.run(wait_for_kit, page)
    await browser.run(set_offline, page, True)

    ok = await browser.run(answer_scanner, page, code)
    assert ok["result"] == "ok" and "sans réseau" in ok["text"].lower()
    await browser.run(shot, page, "gate-offline-static-ok-360.png")
    results = []
    for each in (void, made_up, code):
        await browser.run(scan_next, page)
        results.append((await browser.run(answer_scanner, page, each))["result"])
    assert results == ["void", "unknown", "already_scanned"]
    # A barcode typed by hand cannot be checked without the network: queued, said so.
    await browser.run(scan_next, page)
    unchecked = await browser.run(answer_scanner, page, typed)
    assert "code-barres saisi" in unchecked["text"]
    assert await browser.run(waiting, page) == 5
    assert await count_scans(served.store) == 0  # nothing reached the server

    await browser.run(set_offline, page, False)
    await browser.run(page.evaluate, "window.dispatchEvent(new Event('online'))")
    await eventually(lambda: _at_least(served.store, 5), within=10)
    async with served.store.read() as session:
        recorded = list(await session.scalars(
            select(GateScan.result).where(GateScan.offline).order_by(GateScan.at,
                                                                     GateScan.id)))
    assert sorted(recorded) == sorted(["ok", "void", "unknown", "already_scanned",
                                       "already_scanned"])
    assert await count_scans(served.store, result="ok") == 1
    await eventually(lambda: _nothing_waiting(page, browser), within=10)
    await browser.run(lambda: page.context.close())


async def _nothing_waiting(page, browser) -> bool:
    return await browser.run(waiting, page) in (None, 0)
