"""A client that sends a malformed HTTP request gets 400, the log gets one line without a
traceback and without what the client sent, and the server keeps serving. Raw bytes over a
socket to the real server of ``ticketbot run`` (webhook mode, see tests/test_webhook.py)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.test_webhook import get, running  # noqa: F401  (the fixture)

SECRET_VALUE = b"Camille-Martin-token"


async def raw_exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(5):
            return await reader.read()  # aiohttp closes the connection after a parse error
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Name: " + SECRET_VALUE + b"\x00\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer\x01" + SECRET_VALUE
        + b"\r\n\r\n",
        b"GET /healthz?" + SECRET_VALUE + b" HTTP/9.Z\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + SECRET_VALUE + b"\r\n\r\n",
    ],
)
async def test_a_malformed_request_is_logged_in_one_line_and_the_server_keeps_serving(
    running, caplog, request_bytes  # noqa: F811
):
    caplog.set_level(logging.DEBUG, logger="aiohttp")
    answer = await raw_exchange(running.server.port, request_bytes)
    assert answer.split(b"\r\n", 1)[0].endswith(b" 400 Bad Request"), answer
    [record] = [r for r in caplog.records if r.name == "aiohttp.server"]
    assert record.exc_info is None and record.levelno == logging.WARNING
    line = record.getMessage()
    assert "\n" not in line and SECRET_VALUE.decode() not in line, line
    assert line.startswith("malformed HTTP request refused with 400")
    status, _ = await get(running, "/healthz")
    assert status == 200
