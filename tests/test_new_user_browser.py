"""What a new user tripped over in the Mini App (issue 23), in a real browser (Debian's
headless Chromium via Playwright) against the bot's own HTTP server: the page opened outside
Telegram, a friend without an order, the ticket's menu, the site's icon, the name offered."""

from __future__ import annotations

import re

import aiohttp
import pytest

from storage import services
from tests import test_miniapp_browser
from tests.browser import chromium_missing, mini_app_url
from tests.conftest import sample_document
from tests.test_miniapp_browser import (
    BUYER,
    FRIEND,
    close,
    notice,
    open_order_in_chat,
    signed,
    text_of,
)

served = test_miniapp_browser.served  # the bot, its HTTP server (API + Mini App) and SMTP
pytestmark = pytest.mark.skipif(chromium_missing() is not None,
                                reason=chromium_missing() or "")


def heading(page) -> tuple[bool, str]:
    """Whether the page's heading shows, and its text."""
    page.locator("body[data-ready]").wait_for()
    title = page.locator("#title")
    return title.is_visible(), title.inner_text() if title.is_visible() else ""


async def test_a_page_opened_outside_telegram_shows_no_placeholder_heading(served, browser):
    page = await browser.run(browser.open_page, mini_app_url(served.base, ""))  # no initData
    shown = await browser.run(text_of, page)
    assert "Please open this page from the bot in Telegram." in shown
    assert await browser.run(heading, page) == (False, "")
    assert "title" not in shown
    await browser.run(close, page)


async def test_a_friend_without_an_order_sees_their_tickets_not_my_order(served, browser):
    await served.import_orders(sample_document(tickets=2, language="fr"))
    await open_order_in_chat(served)
    store = served.store
    ids = sorted((await services.order_overview(store, BUYER, 1)).tickets, key=lambda t: t.ref)
    invite = await services.invite_friend(store, BUYER, ids[0].id, "alex@example.org")
    await services.open_link(store, FRIEND, invite.claim_token)
    await services.accept_invitation(store, FRIEND, invite.invitation_id, "Alex Durand")
    page = await browser.run(browser.open_page,
                             mini_app_url(served.base, signed(served, user_id=FRIEND)))
    shown = await browser.run(text_of, page)
    assert await browser.run(heading, page) == (True, "Billets à votre nom")
    assert "Ma commande" not in shown
    assert shown.count("Billets à votre nom") == 1 and "titulaire : Alex Durand" in shown
    await browser.run(close, page)


def open_first_ticket(page) -> str:
    page.get_by_role("button", name=re.compile("T-DF-100000-1")).click()
    page.get_by_role("button", name=re.compile("Attribuer le billet")).wait_for()
    return page.locator("body").inner_text()


async def test_the_ticket_menu_names_the_ticket_once(served, browser):
    await served.import_orders(sample_document(tickets=1, language="fr"))
    await open_order_in_chat(served)
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served)))
    await browser.run(text_of, page)
    menu = await browser.run(open_first_ticket, page)
    assert menu.count("Billet T-DF-100000-1") == 1, menu
    await browser.run(close, page)


def claim_form_name(page, ref: str) -> str:
    page.get_by_role("button", name=re.compile(ref)).click()
    page.get_by_role("button", name=re.compile("Attribuer le billet")).click()
    page.get_by_role("button", name=re.compile("Mettre le billet à mon nom")).click()
    return page.get_by_label("Nom sur le billet").input_value()


def confirm_and_go_back(page) -> str:
    page.get_by_role("button", name=re.compile("Confirmer")).click()
    return notice(page)


async def test_the_mini_app_offers_her_name_for_her_first_ticket_only(served, browser):
    await served.import_orders(sample_document(tickets=2, language="fr"))
    await open_order_in_chat(served)
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served)))
    await browser.run(text_of, page)
    assert await browser.run(claim_form_name, page, "T-DF-100000-1") == "Camille Martin"
    assert "Camille Martin" in await browser.run(confirm_and_go_back, page)
    assert await browser.run(claim_form_name, page, "T-DF-100000-2") == ""
    await browser.run(close, page)


async def test_the_site_icon_is_served(served, browser):
    await served.import_orders(sample_document(tickets=1, language="fr"))
    await open_order_in_chat(served)
    page = await browser.run(browser.open_page, mini_app_url(served.base, signed(served)))
    await browser.run(text_of, page)
    href = await browser.run(lambda: page.evaluate(
        "document.querySelector('link[rel=icon]').href"))
    await browser.run(close, page)
    async with aiohttp.ClientSession() as http:
        for url in (f"{served.base}/favicon.ico", href):  # the site's root, the page's link
            async with http.get(url) as answer:
                assert answer.status == 200, url
                assert (await answer.read())[:4] == b"\x00\x00\x01\x00"  # an .ico file
