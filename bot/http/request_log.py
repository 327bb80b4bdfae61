"""How our aiohttp server logs a request it could not even parse.

A client that sends a malformed request (a NUL byte in a header, a broken request line) gets
400 from aiohttp's parser, which then logs the parser's error with a full traceback and the
offending bytes, a header that may hold a token or a name. That is the client's mistake and
says nothing about our code: we log one line with the status and the kind of error instead,
and nothing the client sent. Every other error keeps its traceback.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.log import server_logger


class RequestErrorLog(logging.LoggerAdapter):
    """aiohttp's server logger, with one line for a malformed request."""

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        error = kwargs.get("exc_info")
        if isinstance(error, HttpProcessingError):
            # aiohttp logs non-HTTP traffic on a first request at DEBUG; keep that, else WARNING.
            self.logger.log(
                min(level, logging.WARNING),
                "malformed HTTP request refused with %s (%s)",
                error.code,
                type(error).__name__,
            )
            return
        super().log(level, msg, *args, **kwargs)


def request_error_log() -> RequestErrorLog:
    """The logger to give aiohttp's ``AppRunner(logger=...)``."""
    return RequestErrorLog(server_logger, {})
