"""Our aiohttp transport for python-telegram-bot, through a real ``telegram.Bot`` and real HTTP:
parameters arrive as Telegram expects them (one JSON document; multipart with files), answers and
Telegram's errors come back as PTB reports them, and timeouts and dead servers become PTB's
``TimedOut`` and ``NetworkError``, as with PTB's own httpx transport. The server side is a small
aiohttp app standing in for Telegram's."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiohttp import web
from telegram import Bot
from telegram.error import BadRequest, NetworkError, TelegramError, TimedOut

from bot.aiohttp_request import AiohttpRequest

TOKEN = "123456:TEST-TOKEN"
ME = {"id": 123456, "is_bot": True, "first_name": "Ticketbot", "username": "ticketbot"}


def message(chat_id: int, text: str | None = None) -> dict:
    sent = {"message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "private"}}
    if text is not None:
        sent["text"] = text
    return sent


class FakeTelegram:
    """Answers like the Bot API, and remembers what each call sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.delay = 0.0
        self.garbled = False

    async def handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        received: dict = {}
        if request.content_type == "multipart/form-data":
            async for part in await request.multipart():
                received[part.name] = (part.filename, await part.read(decode=True))
        elif request.content_type == "application/json":
            received = await request.json()
        else:
            received = dict(await request.post())
        self.calls.append((method, request.content_type, received))
        await asyncio.sleep(self.delay)
        if method == "getMe" and self.garbled:
            return web.Response(body=b'{"ok": true, "result": {"id": 1,',
                                content_type="application/json")
        if method == "getMe":
            return web.json_response({"ok": True, "result": ME})
        if method == "sendMessage":
            if not received.get("text", "").strip():
                return web.json_response(
                    {"ok": False, "error_code": 400,
                     "description": "Bad Request: message text is empty"}, status=400)
            return web.json_response(
                {"ok": True, "result": message(int(received["chat_id"]), received["text"])})
        if method == "sendDocument":
            return web.json_response({"ok": True, "result": message(int(received["chat_id"][1]))})
        return web.json_response({"ok": False, "error_code": 404, "description": "Not Found"},
                                 status=404)


@pytest.fixture
async def telegram():
    fake = FakeTelegram()
    app = web.Application()
    app.router.add_post("/bot{token}/{method}", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    fake.base_url = f"http://127.0.0.1:{port}/bot"
    yield fake
    await runner.cleanup()


def make_bot(base_url: str, **request_options) -> Bot:
    return Bot(TOKEN, base_url=base_url, request=AiohttpRequest(**request_options),
               get_updates_request=AiohttpRequest(1))


async def test_parameters_are_sent_as_one_json_document_and_answers_parsed(telegram):
    async with make_bot(telegram.base_url) as bot:
        sent = await bot.send_message(42, "Héllo <b>you</b> 🎟", parse_mode="HTML",
                                      reply_markup={"inline_keyboard": [[
                                          {"text": "Go", "callback_data": "go"}]]})
    assert sent.chat.id == 42 and sent.text == "Héllo <b>you</b> 🎟"
    method, content_type, received = telegram.calls[-1]
    assert (method, content_type) == ("sendMessage", "application/json")
    # Values keep their JSON types: the keyboard is an object, not a JSON string in a field.
    assert received["chat_id"] == 42 and received["parse_mode"] == "HTML"
    assert received["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "go"


async def test_an_answer_that_is_not_json_is_a_telegram_error(telegram):
    telegram.garbled = True
    bot = make_bot(telegram.base_url)
    await bot.request.initialize()
    try:
        with pytest.raises(TelegramError, match="Invalid server response"):
            await bot.get_me()
    finally:
        await bot.request.shutdown()


async def test_files_are_sent_as_multipart(telegram):
    async with make_bot(telegram.base_url) as bot:
        await bot.send_document(42, document=b"ticket bytes", filename="ticket.pdf",
                                caption="Your ticket")
    method, content_type, received = telegram.calls[-1]
    assert (method, content_type) == ("sendDocument", "multipart/form-data")
    assert received["document"] == ("ticket.pdf", b"ticket bytes")
    assert received["caption"] == (None, b"Your ticket")


async def test_telegrams_errors_come_back_as_ptb_reports_them(telegram):
    async with make_bot(telegram.base_url) as bot:
        with pytest.raises(BadRequest, match=r"(?i)message text is empty"):
            await bot.send_message(42, " ")


async def test_a_slow_answer_times_out(telegram):
    async with make_bot(telegram.base_url, read_timeout=0.2) as bot:
        telegram.delay = 1.0
        with pytest.raises(TimedOut):
            await bot.send_message(42, "anyone there?")
        # A longer timeout for one call, as PTB passes it, is honoured.
        assert (await bot.send_message(42, "patience", read_timeout=3)).text == "patience"


async def test_an_unreachable_server_is_a_network_error():
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    request = AiohttpRequest()
    await request.initialize()
    try:
        with pytest.raises(NetworkError) as raised:
            await request.post(f"http://127.0.0.1:{port}/bot{TOKEN}/getMe")
        assert not isinstance(raised.value, TimedOut)
    finally:
        await request.shutdown()


async def test_it_must_be_initialized_and_can_be_restarted(telegram):
    request = AiohttpRequest()
    with pytest.raises(NetworkError, match="not initialized"):  # PTB wraps our RuntimeError
        await request.post(f"{telegram.base_url}{TOKEN}/getMe")
    for _ in range(2):
        await request.initialize()
        assert (await request.post(f"{telegram.base_url}{TOKEN}/getMe"))["username"] == "ticketbot"
        await request.shutdown()
