"""The chat's ways into the Mini App: buttons only with ``TICKETBOT_WEBAPP_URL`` set, set once
per chat, and the emulator refusing what Telegram refuses (a Mini App URL that is not HTTPS)."""

from __future__ import annotations

import pytest
from telegram import (
    Bot,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    MenuButtonWebApp,
    WebAppInfo,
)
from telegram.error import BadRequest

from bot.settings import Settings
from tests.conftest import sample_document
from tests.harness import close_harness, open_harness

BUYER = 1001


async def open_order(harness):
    await harness.import_orders(sample_document(tickets=2, language="fr"))
    buyer = harness.user(BUYER, "Camille", "Martin", language_code="fr")
    await buyer.start(await harness.order_link("DF-100000"))
    return buyer


async def test_without_a_webapp_url_the_chat_offers_no_mini_app(harness):
    buyer = await open_order(harness)
    assert not [b for row in buyer.last.buttons for b in row if "web_app" in b.raw]
    assert buyer.menu_button is None
    assert not [c for c in harness.emulator.calls if c.method == "setChatMenuButton"]


async def test_the_menu_button_is_set_once_per_chat(store):
    harness = await open_harness(store, webapp_url="https://tickets.example.org/base/")
    try:
        buyer = await open_order(harness)
        assert buyer.last.button("Ouvrir Ma commande").raw["web_app"]["url"].startswith(
            "https://tickets.example.org/base/app/?order=")
        await buyer.press("Actualiser")
        await buyer.send("/start")
        calls = [c for c in harness.emulator.calls if c.method == "setChatMenuButton"]
        assert len(calls) == 1
        assert buyer.menu_button["web_app"] == {"url": "https://tickets.example.org/base/app/"}
    finally:
        await close_harness(harness)


def test_the_webapp_url_must_be_https():
    with pytest.raises(ValueError):
        Settings(webapp_url="http://tickets.example.org")
    assert Settings(webapp_url="https://tickets.example.org").webapp_url


async def test_the_emulator_refuses_mini_app_urls_that_are_not_https(harness):
    harness.user(BUYER)
    await harness.emulator.user(BUYER).send("/start")
    bot = Bot(harness.emulator.token, base_url=harness.emulator.base_url)
    async with bot:
        with pytest.raises(BadRequest, match=r"(?i)only https links are allowed"):
            await bot.set_chat_menu_button(
                chat_id=BUYER, menu_button=MenuButtonWebApp("x", WebAppInfo("http://a.example")))
        with pytest.raises(BadRequest, match=r"(?i)only https links are allowed"):
            await bot.send_message(BUYER, "hi", reply_markup=InlineKeyboardMarkup(
                [[InlineKeyboardButton("open", web_app=WebAppInfo("http://a.example/app/"))]]))
        assert await bot.set_chat_menu_button(
            chat_id=BUYER, menu_button=MenuButtonWebApp("x", WebAppInfo("https://a.example")))
        button = await bot.get_chat_menu_button(chat_id=BUYER)
        assert isinstance(button, MenuButtonWebApp) and button.web_app.url == "https://a.example"
