"""Webhook mode end to end: the bot registers its webhook with a secret, the emulator delivers
each update by POSTing it to our aiohttp server, and the buyer flow works as with polling;
a request without the right secret is refused and changes nothing."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import func, select
from telegram import Update
from telegram.ext import TypeHandler

from bot.application import build_application
from bot.http.server import SECRET_HEADER, BotServer
from bot.settings import Settings
from bot.tools.emulator import BotApiEmulator
from storage import services, tokens
from storage.models import OrderAccess, Ticket, UpdateInbox
from storage.services.importing.importer import import_document
from tests.conftest import sample_document
from tests.harness import BOT_USERNAME, free_port
from tests.test_http_api import Answer, conform

SECRET = "webhook-secret_0123456789"
BUYER = 1001


@dataclass
class Running:
    emulator: BotApiEmulator
    server: BotServer
    settings: Settings

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.port}"


async def start_bot(store, tmp_path, **overrides) -> Running:
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    port = free_port()
    values = {
        "token": emulator.token,
        "telegram_api_url": emulator.base_url,
        "bot_username": BOT_USERNAME,
        "database_url": store.url,
        "secret": "test-secret",
        "outbox_dir": str(tmp_path / "outbox"),
        "http_host": "127.0.0.1",
        "http_port": port,
        "api_token": "api-token",
        "webhook_url": f"http://127.0.0.1:{port}/telegram/webhook",
        "webhook_secret": SECRET,
        **overrides,
    }
    settings = Settings(**values)
    application = build_application(settings, store, webhook=bool(settings.webhook_url))
    server = BotServer(settings, store, application, poll_timeout=1)
    await server.start()
    return Running(emulator, server, settings)


@pytest.fixture
async def running(store, tmp_path):
    bot = await start_bot(store, tmp_path)
    try:
        yield bot
    finally:
        await bot.server.stop()
        await bot.emulator.stop()


async def open_order(running: Running, store):
    await import_document(store, sample_document(language="en"))
    token = await services.create_order_link(store, "DF-100000")
    buyer = running.emulator.user(
        BUYER, first_name="Camille", last_name="Martin", language_code="en"
    )
    return buyer, token


async def post_update(
    running: Running, body: bytes, headers: dict[str, str], *, valid: bool = True
) -> int:
    """POST to the webhook route as Telegram would; the answer must match the OpenAPI
    document (checked like the API's, see tests/test_http_api.py)."""
    headers = {"Content-Type": "application/json", **headers}
    async with (
        aiohttp.ClientSession() as session,
        session.post(running.base + "/telegram/webhook", data=body, headers=headers) as answer,
    ):
        reply = Answer(answer.status, answer.headers, await answer.read())
    conform("POST", "/telegram/webhook", reply, body=body, headers=headers, request_is_valid=valid)
    return reply.status


async def get(running: Running, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(running.base + path) as answer:
        return answer.status, await answer.text()


async def test_the_bot_registers_its_webhook_with_the_secret(running):
    [call] = [c for c in running.emulator.calls if c.method == "setWebhook"]
    assert call.params["url"] == running.settings.webhook_url
    assert call.params["secret_token"] == SECRET
    info = await running.server.application.bot.get_webhook_info()
    assert info.url == running.settings.webhook_url


async def test_processes_sharing_a_store_derive_the_same_secret_token(store, tmp_path):
    from bot.http.server import webhook_secret_from

    tokens = []
    for _ in range(2):  # one process after another, neither told the token
        bot = await start_bot(store, tmp_path, webhook_secret=None)
        try:
            [call] = [c for c in bot.emulator.calls if c.method == "setWebhook"]
            tokens.append(call.params["secret_token"])
            assert await post_update(bot, b'{"update_id": 1}', {SECRET_HEADER: SECRET},
                                     valid=False) == 403
        finally:
            await bot.server.stop()
            await bot.emulator.stop()
    assert tokens[0] == tokens[1] == webhook_secret_from(b"test-secret")
    assert "test-secret" not in tokens[0] and len(tokens[0]) == 43


async def test_the_buyer_flow_works_over_the_webhook(running, store):
    buyer, token = await open_order(running, store)
    overview = await buyer.start(token)
    assert "My order DF-100000" in overview.text
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Claim the ticket for myself")
    done = await buyer.press("Confirm")
    assert "Completed (1)" in done.text and "Camille Martin" in done.text
    async with store.read() as session:
        ticket = await session.scalar(select(Ticket).where(Ticket.ref == "T-DF-100000-1"))
    assert ticket.holder_name == "Camille Martin"
    assert not any(call.method == "getUpdates" for call in running.emulator.calls)
    assert {status for _, status in running.emulator.webhook_attempts} == {200}
    async with store.read() as session:
        presses = [payload["callback_query"]["message"] for payload in await session.scalars(
            select(UpdateInbox.payload)) if "callback_query" in payload]
    # Kept without the formatting and keyboard of the pressed message (bot/unread_fields.py).
    assert len(presses) == 4 and all("text" in message and "entities" not in message
                                     and "reply_markup" not in message for message in presses)

    status, metrics = await get(running, "/metrics")
    assert status == 200
    assert 'ticketbot_updates_total{kind="message"} 1.0' in metrics
    assert 'ticketbot_updates_total{kind="callback_query"} 4.0' in metrics
    assert "ticketbot_update_seconds_count 5.0" in metrics


async def test_handler_errors_are_counted(running):
    async def explode(update: Update, context) -> None:
        if update.effective_message is not None and update.effective_message.text == "/boom":
            raise RuntimeError("boom")

    running.server.application.add_handler(TypeHandler(Update, explode), group=1)
    reaction = await running.emulator.user(3003, first_name="Eve").send("/boom")
    assert "Sorry, something went wrong" in reaction.text
    _, metrics = await get(running, "/metrics")
    assert "ticketbot_handler_errors_total 1.0" in metrics


def forged_start(token: str) -> dict:
    return {
        "update_id": 424242,
        "message": {
            "message_id": 1,
            "date": 1_800_000_000,
            "text": f"/start {token}",
            "chat": {"id": BUYER, "type": "private", "first_name": "Mallory"},
            "from": {"id": BUYER, "is_bot": False, "first_name": "Mallory"},
            "entities": [{"type": "bot_command", "offset": 0, "length": 6}],
        },
    }


@pytest.mark.parametrize("secret", [None, "", "wrong", SECRET + "x", SECRET.upper()])
async def test_a_request_without_the_right_secret_is_refused_and_changes_nothing(
    running, store, secret
):
    _, token = await open_order(running, store)
    headers = {} if secret is None else {SECRET_HEADER: secret}
    body = json.dumps(forged_start(token)).encode()
    assert await post_update(running, body, headers, valid=secret is not None) == 403
    await asyncio.sleep(0.2)  # time enough for a queued update to be handled
    async with store.read() as session:
        assert await session.scalar(select(func.count()).select_from(OrderAccess)) == 0
    assert not any(call.method == "sendMessage" for call in running.emulator.calls)
    _, metrics = await get(running, "/metrics")
    assert "ticketbot_updates_total{" not in metrics


async def test_the_right_secret_is_accepted_from_anyone_sending_it(running, store):
    """The control of the test above: with the secret, the same request is handled."""
    _, token = await open_order(running, store)
    body = json.dumps(forged_start(token)).encode()
    assert await post_update(running, body, {SECRET_HEADER: SECRET}) == 200

    async def granted() -> int:
        async with store.read() as session:
            return await session.scalar(select(func.count()).select_from(OrderAccess))

    async with asyncio.timeout(5):
        while not await granted():  # noqa: ASYNC110 - the store has no events
            await asyncio.sleep(0.02)
    async with store.read() as session:
        kept = await session.scalar(select(UpdateInbox.payload))
    # Kept in the inbox as Telegram sent it, but the link token: its marker instead (issue 22).
    sent = json.loads(body)
    sent["message"]["text"] = "/start " + tokens.start_marker(await store.secret(), token)
    assert kept == sent and token not in json.dumps(kept)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"message": {}}'])
async def test_a_body_that_is_not_an_update_is_a_bad_request(running, body):
    assert await post_update(running, body, {SECRET_HEADER: SECRET}, valid=False) == 400


async def test_get_updates_is_refused_while_the_webhook_is_set(running):
    url = f"{running.emulator.base_url}{running.emulator.token}/getUpdates"
    async with aiohttp.ClientSession() as session, session.post(url) as answer:
        assert answer.status == 409
        body = await answer.json()
    assert body["description"] == (
        "Conflict: can't use getUpdates method while webhook is active; use deleteWebhook to "
        "delete the webhook first"
    )


async def test_health_and_the_api_are_served_in_webhook_mode(running):
    assert await get(running, "/healthz") == (
        200,
        '{"status": "ok", "checks": {"database": true, "bot": true}}',
    )
    status, _ = await get(running, "/api/orders/DF-100000")
    assert status == 401
    status, document = await get(running, "/api/openapi.json")
    assert status == 200 and '"/telegram/webhook"' in document


async def test_without_a_webhook_url_the_bot_polls_next_to_the_api(store, tmp_path):
    bot = await start_bot(store, tmp_path, webhook_url=None)
    try:
        buyer, token = await open_order(bot, store)
        assert "My order DF-100000" in (await buyer.start(token)).text
        assert any(call.method == "getUpdates" for call in bot.emulator.calls)
        assert not any(call.method == "setWebhook" for call in bot.emulator.calls)
        assert (await get(bot, "/healthz"))[0] == 200
        status, document = await get(bot, "/api/openapi.json")
        assert status == 200 and "/telegram/webhook" not in document
    finally:
        await bot.server.stop()
        await bot.emulator.stop()
    assert not bot.server.bot_running()


async def test_the_emulator_retries_a_failing_webhook_with_the_secret():
    seen: list[tuple[int, str | None]] = []

    async def flaky(request: web.Request) -> web.Response:
        update = await request.json()
        seen.append((update["update_id"], request.headers.get(SECRET_HEADER)))
        return web.Response(status=500 if len(seen) <= 2 else 200)

    app = web.Application()
    app.router.add_post("/hook", flaky)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    emulator = BotApiEmulator()
    await emulator.start()
    try:
        async with aiohttp.ClientSession() as session:
            api = f"{emulator.base_url}{emulator.token}"
            async with session.post(
                f"{api}/setWebhook",
                json={"url": f"http://127.0.0.1:{port}/hook", "secret_token": "s3cret"},
            ) as answer:
                assert answer.status == 200
            emulator.user(7)._post_text("hello")
            async with asyncio.timeout(5):
                while emulator.pending_updates:  # noqa: ASYNC110 - polled like a client
                    await asyncio.sleep(0.02)
            async with session.post(f"{api}/getWebhookInfo") as answer:
                info = (await answer.json())["result"]
    finally:
        await emulator.stop()
        await runner.cleanup()
    assert seen == [(1, "s3cret")] * 3
    assert [status for _, status in emulator.webhook_attempts] == [500, 500, 200]
    assert info["url"] == f"http://127.0.0.1:{port}/hook"
    assert info["pending_update_count"] == 0
    assert "500" in info["last_error_message"]
