"""The Mini App in a real browser (Debian's headless Chromium, driven by Playwright), served by
the bot's own HTTP server next to the real bot, the Bot API emulator and a real SMTP server.

A French buyer opens her order in the chat, gets the Mini App's buttons, opens it with initData
signed by the test bot token, claims a ticket, sends one to a friend (who claims it in chat
from the e-mail), lists the third for resale and changes its price; the chat shows the same.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from aiohttp import web

from bot.http.server import BotServer
from bot.webapp.init_data import user_init_data
from tests.browser import DARK, LIGHT, chromium_missing, foreign_requests, mini_app_url
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness

pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=chromium_missing() or "")

BUYER, FRIEND, STRANGER = 1001, 2002, 3003
PUBLIC_URL = "https://tickets.example.org"
LINK = re.compile(r"https://t\.me/ticketbot_test_bot\?start=([A-Za-z0-9_-]+)")


@pytest.fixture
async def served(store):
    """The bot against the emulator and SMTP, with its HTTP server (API + Mini App) on
    loopback; the public URL Telegram would open is configured, so the chat offers it."""
    harness = await open_harness(store, webapp_url=PUBLIC_URL)
    runner = web.AppRunner(BotServer(harness.settings, store, harness.application).web_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    harness.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    try:
        yield harness
    finally:
        await runner.cleanup()
        await close_harness(harness)


async def open_order_in_chat(harness, number: str = "DF-100000", user_id: int = BUYER):
    token = await harness.order_link(number)
    buyer = harness.user(user_id, "Camille", "Martin", language_code="fr")
    reaction = await buyer.start(token)
    return buyer, reaction


def signed(harness, user_id: int = BUYER, **kwargs) -> str:
    return user_init_data(harness.settings.token, user_id, first_name="Camille",
                          language_code="fr", **kwargs)


# --- what the browser does (on its own thread) ----------------------------------------------


def notice(page) -> str:
    """The notice the page shows once an action is done."""
    page.locator("#notice").wait_for(state="visible")
    return page.locator("#notice").inner_text()


def claim_first_ticket(page) -> str:
    page.get_by_role("button", name=re.compile("T-DF-100000-1")).click()
    page.get_by_role("button", name=re.compile("Attribuer le billet")).click()
    page.get_by_role("button", name=re.compile("Mettre le billet à mon nom")).click()
    name = page.get_by_label("Nom sur le billet")
    assert name.input_value() == "Camille Martin"
    page.get_by_role("button", name=re.compile("Confirmer")).click()
    return notice(page)


def send_second_ticket(page, email: str) -> str:
    page.get_by_role("button", name=re.compile("T-DF-100000-2")).click()
    page.get_by_role("button", name=re.compile("Attribuer le billet")).click()
    page.get_by_role("button", name=re.compile("Envoyer à un ami")).click()
    field = page.get_by_label("Adresse e-mail de votre ami")
    field.fill("not an address")
    page.get_by_role("button", name="📧 Envoyer").click()
    error = page.locator("#field-email-error")
    error.wait_for(state="visible")
    assert "n’est pas une adresse e-mail valide" in error.inner_text()
    assert field.get_attribute("aria-invalid") == "true"
    field.fill(email)
    page.get_by_role("button", name="📧 Envoyer").click()
    page.locator("#notice code").wait_for()
    return notice(page)


def sell_third_ticket(page, shots: Path) -> tuple[str, str, str]:
    page.get_by_role("button", name=re.compile("T-DF-100000-3")).click()
    page.get_by_role("button", name=re.compile("Vendre ce billet")).click()
    price = page.get_by_label(re.compile("Prix"))
    price.fill("5")
    page.get_by_role("button", name=re.compile("Confirmer")).click()
    error = page.locator("#field-price-error")
    error.wait_for(state="visible")
    too_low = error.inner_text()
    page.screenshot(path=str(shots / "miniapp-price-refused-light-360.png"), full_page=True)
    price.fill("45,50")
    page.get_by_role("button", name=re.compile("Confirmer")).click()
    listed = notice(page)
    page.get_by_role("button", name=re.compile("T-DF-100000-3")).click()
    page.get_by_role("button", name=re.compile("Changer le prix")).click()
    page.get_by_label(re.compile("Prix")).fill("40")
    page.get_by_role("button", name=re.compile("Confirmer")).click()
    page.locator("#notice").get_by_text("40,00").wait_for()
    return too_low, listed, page.locator("#app").inner_text()


def text_of(page, selector: str = "body") -> str:
    page.locator("body[data-ready]").wait_for()
    return page.locator(selector).inner_text()


def screenshot(page, path: Path) -> None:
    page.locator("#app section").first.wait_for()
    page.screenshot(path=str(path), full_page=True)


def close(page) -> None:
    page.context.close()


# --- the stories ---------------------------------------------------------------------------


async def test_buyer_manages_her_order_in_the_mini_app_and_the_chat_agrees(
        served, browser, tmp_path):
    await served.import_orders(sample_document(tickets=3, language="fr"))
    buyer, _ = await open_order_in_chat(served)
    # The chat offers the Mini App: a web_app button on the overview and the menu button.
    app_button = buyer.last.button("Ouvrir Ma commande")
    assert app_button.raw["web_app"]["url"].startswith(f"{PUBLIC_URL}/app/?order=")
    assert buyer.menu_button == {"type": "web_app", "text": "Ma commande",
                                 "web_app": {"url": f"{PUBLIC_URL}/app/"}}
    order_id = int(app_button.raw["web_app"]["url"].rsplit("=", 1)[1])

    url = mini_app_url(served.base, signed(served), order=order_id)
    page = await browser.run(browser.open_page, url)
    shown = await browser.run(text_of, page)
    assert "Ma commande DF-100000" in shown
    assert "sam. 17 juil. 2027, 14:00" in shown and "Parc des Expositions, Nantes" in shown
    assert "À attribuer (3)" in shown
    await browser.run(screenshot, page, tmp_path / "miniapp-light-360.png")

    claimed = await browser.run(claim_first_ticket, page)
    assert "pour titulaire Camille Martin" in claimed

    sent = await browser.run(send_second_ticket, page, "alex@example.org")
    link = LINK.search(sent).group(1)
    mail = await served.next_mail()
    while mail["To"] != "alex@example.org":  # the buyer's own "your ticket" mail may come first
        assert mail["Subject"].startswith("Votre billet"), mail["Subject"]
        mail = await served.next_mail()
    assert LINK.search(mail.get_body(("plain",)).get_content()).group(1) == link
    friend = served.user(FRIEND, "Alex", "Durand", language_code="fr")
    await friend.start(link)
    mark = buyer.mark()
    accepted = await friend.press("Accepter le billet")
    assert "Alex Durand" in accepted.text
    news = await buyer.wait_for_message(lambda m: "Alex Durand" in m.text, since=mark)
    assert "T-DF-100000-2" in news.text

    too_low, listed, after = await browser.run(sell_third_ticket, page, tmp_path)
    assert "10,00" in too_low and "89,00" in too_low
    assert "45,50" in listed
    assert "En revente (1)" in after and "40,00" in after

    # The chat shows the same order, refreshed.
    refreshed = await buyer.press("Actualiser", message=buyer.find("Ma commande DF-100000"))
    assert "Camille Martin" in refreshed.text and "Alex Durand" in refreshed.text
    assert "En revente (1)" in refreshed.text
    menu = await buyer.press("T-DF-100000-3", message=buyer.find("Ma commande DF-100000"))
    assert "En revente à 40,00" in menu.text

    await browser.run(screenshot, page, tmp_path / "miniapp-after-light-360.png")
    # The page asked nothing of any host but the bot's own, apart from Telegram's script.
    requests = await browser.run(lambda: list(page.requests))
    assert any("/app/api/tickets/" in r for r in requests)
    assert foreign_requests(page, served.base) == []
    await browser.run(close, page)

    # The same page in a dark theme, at phone width.
    dark = await browser.run(browser.open_page,
                             mini_app_url(served.base, signed(served), theme=DARK, order=order_id))
    await browser.run(screenshot, dark, tmp_path / "miniapp-dark-360.png")
    background = await browser.run(lambda: dark.evaluate(
        "getComputedStyle(document.body).backgroundColor"))
    assert background == "rgb(24, 24, 24)"  # the theme's secondary_bg_color
    await browser.run(close, dark)
    assert (tmp_path / "miniapp-light-360.png").stat().st_size > 5000
    assert (tmp_path / "miniapp-dark-360.png").stat().st_size > 5000


async def test_forged_init_data_opens_nothing(served, browser):
    await served.import_orders(sample_document(tickets=1, language="fr"))
    await open_order_in_chat(served)
    forged = signed(served).replace("Camille", "Mallory")
    page = await browser.run(browser.open_page, mini_app_url(served.base, forged, theme=LIGHT))
    shown = await browser.run(text_of, page)
    assert "Veuillez ouvrir cette page depuis le bot dans Telegram." in shown
    assert "DF-100000" not in shown
    await browser.run(close, page)


async def test_another_users_order_is_not_shown(served, browser):
    await served.import_orders(sample_document(orders=2, tickets=1, language="fr"))
    await open_order_in_chat(served)
    stranger, _ = await open_order_in_chat(served, "DF-100001", user_id=STRANGER)
    theirs = int(stranger.last.button("Ouvrir Ma commande").raw["web_app"]["url"]
                 .rsplit("=", 1)[1])
    # A direct link (startapp) naming their order: the signed start_param is honoured, the
    # access rule is not bent.
    page = await browser.run(browser.open_page, mini_app_url(
        served.base, signed(served, start_param=str(theirs))))
    shown = await browser.run(text_of, page)
    assert "DF-100001" not in shown
    assert "n’est pas à vous" in shown or "n'est pas à vous" in shown
    await browser.run(close, page)
