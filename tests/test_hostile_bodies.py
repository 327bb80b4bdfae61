"""No body makes the server answer 500: on every POST route of the real ``ticketbot run``
server (the shop's API, the gate, the Mini App, Telegram's webhook), a body nested thousands
deep, a number of thousands of digits, a NaN or a string that is not text gets 400 or 422 with
the JSON error (413 where the body passes the Mini App's size limit), the log gets no
traceback, and nothing changes in the store."""

from __future__ import annotations

import logging

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.http.kernel import MAX_DEPTH, JsonRefused, read_json
from bot.http.server import SECRET_HEADER
from bot.webapp.init_data import user_init_data
from storage.models import AuditEntry, GateScan, Order, UpdateInbox
from tests.test_webhook import SECRET, start_bot

STAFF = 1001
GATE_TOKEN = "gate-token-for-hostile-bodies"

HOSTILE = {
    "nested arrays": b"[" * 3000 + b"]" * 3000,
    "nested objects": b'{"a":' * 3000 + b"1" + b"}" * 3000,
    "nested past the limit": b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1),
    "huge integer": b'{"events": [], "orders": [], "n": ' + b"9" * 5000 + b"}",
    "integer past 64 bits": b'{"update_id": 99999999999999999999}',
    "huge float": b'{"price": 1e999}',
    "NaN": b'{"price": NaN}',
    "lone surrogate": b'{"barcode": "\\ud800", "gate": "g", "nonce": "n", "update_id": 1}',
    "not UTF-8": b'{"barcode": "\xff"}',
}


def mini_app_auth(running) -> dict[str, str]:
    return {"Authorization": "tma " + user_init_data(running.emulator.token, STAFF)}


def routes(running) -> dict[str, dict[str, str]]:
    """Every POST route, with what opens it."""
    return {
        "/api/orders": {"Authorization": "Bearer api-token"},
        "/api/resale/1/sold": {"Authorization": "Bearer api-token"},
        "/api/scan": {"Authorization": f"Bearer {GATE_TOKEN}"},
        "/app/api/tickets/1/claim": mini_app_auth(running),
        "/app/api/language": mini_app_auth(running),
        "/app/api/gate/scan": mini_app_auth(running),
        "/telegram/webhook": {SECRET_HEADER: SECRET},
    }


@pytest.fixture
async def running(store, tmp_path):
    bot = await start_bot(store, tmp_path, gate_token=GATE_TOKEN, staff_ids=str(STAFF))
    try:
        yield bot
    finally:
        await bot.server.stop()
        await bot.emulator.stop()


async def rows(store) -> tuple[int, ...]:
    async with store.read() as session:
        return tuple([await session.scalar(select(func.count()).select_from(model))
                      for model in (Order, GateScan, AuditEntry, UpdateInbox)])


async def test_no_hostile_body_gets_a_500_on_any_post_route(running, store, caplog):
    caplog.set_level(logging.INFO)
    before = await rows(store)
    async with aiohttp.ClientSession() as session:
        for path, headers in routes(running).items():
            for name, body in HOSTILE.items():
                async with session.post(running.base + path, data=body, headers={
                        "Content-Type": "application/json", **headers}) as answer:
                    status, reply = answer.status, await answer.json()
                assert status in (400, 413, 422), (path, name, status, reply)
                assert reply["error"] and reply["message"], (path, name)
    assert await rows(store) == before
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_mini_app_says_so_in_the_users_language(running):
    headers = {"Authorization": "tma " + user_init_data(running.emulator.token, STAFF,
                                                         language_code="nl"),
               "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as session, session.post(
            running.base + "/app/api/language", data=HOSTILE["nested arrays"],
            headers=headers) as answer:
        assert answer.status == 400
        reply = await answer.json()
    assert reply["error"] == "too_deep" and "pagina" in reply["message"]


@pytest.mark.parametrize(("raw", "status", "error"), [
    (b"[" * 100_000, 400, "too_deep"),
    (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, None, None),
    (b"-" + b"1" * 20, 422, "invalid_body"),
    (b"9223372036854775807", None, None),
    (b"Infinity", 400, "malformed_json"),
    (b'"\\udfff"', 422, "invalid_body"),
    ('{"name": "Zoë"}'.encode("utf-16"), None, None),
])
def test_the_reader_refuses_what_no_field_holds_and_keeps_the_rest(raw, status, error):
    if status is None:
        read_json(raw)
        return
    with pytest.raises(JsonRefused) as refused:
        read_json(raw)
    assert (refused.value.status, refused.value.error) == (status, error)
