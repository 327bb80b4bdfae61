"""python-telegram-bot's networking on aiohttp instead of httpx.

PTB sends every Bot API call through a ``BaseRequest``; its default, ``HTTPXRequest``, spends
more CPU per call than anything else in an update once the store is lean (httpx, httpcore, anyio
and h11 were a quarter of the bot's time in the benchmark, ``bench/README.md``). aiohttp, which
the HTTP API already uses, parses HTTP in C and pools connections cheaply. PTB documents custom
``BaseRequest`` implementations for exactly this; this one keeps HTTPXRequest's behaviour:
the same default timeouts, ``TimedOut`` for a timeout and ``NetworkError`` for any other
transport failure, form-encoded parameters, multipart when files are sent.

aiohttp has no write timeout; a write that stalls is bounded by the read timeout that follows
it (aiohttp's ``sock_read`` covers waiting for the response).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson
from telegram.error import NetworkError, TelegramError, TimedOut
from telegram.request import BaseRequest, RequestData

log = logging.getLogger(__name__)
_JSON = {"Content-Type": "application/json"}

# "Not given: use this request's default", as PTB passes it.
_DEFAULT = type(BaseRequest.DEFAULT_NONE)


class AiohttpRequest(BaseRequest):
    """A ``BaseRequest`` over one ``aiohttp.ClientSession`` (created in ``initialize``)."""

    __slots__ = ("_connect_timeout", "_pool_size", "_pool_timeout", "_read_timeout",
                 "_session")

    def __init__(self, connection_pool_size: int = 256, *, read_timeout: float | None = 5.0,
                 connect_timeout: float | None = 5.0, pool_timeout: float | None = 1.0) -> None:
        self._pool_size = connection_pool_size
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._pool_timeout = pool_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._pool_size),
                headers={"User-Agent": self.USER_AGENT},
                # Bot API answers are JSON that PTB decodes itself; no cookies are involved.
                cookie_jar=aiohttp.DummyCookieJar(),
            )

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        session = self._session
        if session is None or session.closed:
            raise RuntimeError("This AiohttpRequest is not initialized!")
        timeout = self._timeout(read_timeout, connect_timeout, pool_timeout)
        try:
            body, headers = _body(request_data)
            async with session.request(method, url, data=body, headers=headers,
                                       timeout=timeout) as response:
                return response.status, await response.read()
        except TimeoutError as error:
            raise TimedOut from error
        except aiohttp.ClientError as error:
            raise NetworkError(f"aiohttp.{type(error).__name__}: {error}") from error

    @staticmethod
    def parse_json_payload(payload: bytes) -> Any:
        """PTB's hook for decoding answers, with orjson: the Bot API's answers repeat the whole
        message sent, and orjson decodes them in C."""
        try:
            return orjson.loads(payload)
        except orjson.JSONDecodeError as error:
            # As PTB's own: invalid UTF-8 is replaced, not refused, before decoding.
            try:
                return orjson.loads(payload.decode("utf-8", "replace"))
            except orjson.JSONDecodeError:
                log.error("the Bot API answered with invalid JSON (%d bytes)", len(payload))
                raise TelegramError("Invalid server response") from error

    def _timeout(self, read: Any, connect: Any,
                 pool: Any) -> aiohttp.ClientTimeout:
        read = self._read_timeout if isinstance(read, _DEFAULT) else read
        connect = self._connect_timeout if isinstance(connect, _DEFAULT) else connect
        pool = self._pool_timeout if isinstance(pool, _DEFAULT) else pool
        # aiohttp's ``connect`` is the wait for a pooled connection plus making a new one;
        # ``sock_connect`` the making alone.
        waiting = None if connect is None or pool is None else connect + pool
        return aiohttp.ClientTimeout(total=None, connect=waiting, sock_connect=connect,
                                     sock_read=read)


def _body(request_data: RequestData | None) -> tuple[bytes | aiohttp.FormData | None,
                                                    dict[str, str] | None]:
    """The parameters as one JSON document (the Bot API takes ``application/json``; encoding
    the whole at once with orjson costs a fraction of form-encoding each JSON-encoded value),
    or multipart with the files when there are any; and the headers that say which."""
    if request_data is None:
        return None, None
    files = request_data.multipart_data
    if not files:
        return orjson.dumps(request_data.parameters), _JSON
    form = aiohttp.FormData()
    for name, value in request_data.json_parameters.items():
        form.add_field(name, value)
    for name, (filename, content, mimetype) in files.items():
        form.add_field(name, content, filename=filename, content_type=mimetype)
    return form, None
