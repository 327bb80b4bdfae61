"""Telegram's error answers (status, description, parameters) and its unit of length.

Every part of the emulator raises :class:`_ApiError`; the server turns it into the JSON answer
``{"ok": false, "error_code": …, "description": …}`` with the same HTTP status.
"""

from __future__ import annotations


def _utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's offsets and length limits."""
    return len(text.encode("utf-16-le")) // 2


class _ApiError(Exception):
    """An error answer of the Bot API (HTTP status == error_code)."""

    def __init__(self, status: int, description: str, parameters: dict | None = None):
        super().__init__(description)
        self.status = status
        self.description = description
        self.parameters = parameters


def _bad_request(text: str) -> _ApiError:
    return _ApiError(400, f"Bad Request: {text}")



def _default_description(status: int) -> str:
    return {
        400: "Bad Request",
        401: "Unauthorized",
        403: "Forbidden: bot was blocked by the user",
        404: "Not Found",
        409: "Conflict",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, f"Error {status}")
