"""Who is calling: the ``initData`` Telegram hands a Mini App, checked as Telegram documents.

Telegram signs the fields it passes to the page: the data-check-string is every field but
``hash``, as ``key=value`` sorted by key and joined with newlines; the secret key is
HMAC-SHA256 of the bot token keyed with the string "WebAppData"; the hash is the hex
HMAC-SHA256 of the data-check-string under that key. A valid hash proves the fields come from
Telegram for this bot; a fresh ``auth_date`` limits how long a copied initData can be used.
Nothing else the page sends says who the user is.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

MAX_INIT_DATA = 4096
# Telegram's clock and ours may differ a little; an auth_date further ahead is refused.
CLOCK_SKEW = 60


class InitDataRefused(Exception):
    """The initData is missing, malformed, not signed for this bot, or stale."""


@dataclass(frozen=True)
class WebAppUser:
    """The Telegram user the initData names, and what else it says that we use."""

    id: int
    first_name: str
    language_code: str | None
    start_param: str | None
    auth_date: int


def _secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def _data_check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields) if key != "hash")


def sign_init_data(bot_token: str, fields: dict[str, str]) -> str:
    """initData as Telegram would make it for these fields: for the demo and the tests, which
    play Telegram's part."""
    signed = dict(fields)
    signed.pop("hash", None)
    signed["hash"] = hmac.new(_secret_key(bot_token), _data_check_string(signed).encode(),
                              hashlib.sha256).hexdigest()
    return urlencode(signed)


def user_init_data(bot_token: str, user_id: int, *, first_name: str = "Test",
                   language_code: str | None = "en", start_param: str | None = None,
                   auth_date: int | None = None) -> str:
    """Signed initData for one user, as Telegram passes it when the Mini App opens."""
    user = {"id": user_id, "first_name": first_name, "allows_write_to_pm": True}
    if language_code:
        user["language_code"] = language_code
    fields = {"user": json.dumps(user, separators=(",", ":"), ensure_ascii=False),
              "auth_date": str(int(time.time()) if auth_date is None else auth_date),
              "query_id": "AAH" + str(user_id)}
    if start_param:
        fields["start_param"] = start_param
    return sign_init_data(bot_token, fields)


def claimed_language(init_data: str) -> str | None:
    """The language_code the initData claims, unchecked: only to word a refusal of it."""
    try:
        user = json.loads(dict(parse_qsl(init_data)).get("user", ""))
        language = user.get("language_code")
    except (ValueError, TypeError, AttributeError):
        return None
    return language if isinstance(language, str) else None


def verify_init_data(init_data: str, bot_token: str, *, max_age: int,
                     now: float | None = None) -> WebAppUser:
    """The user of a valid, fresh initData; ``InitDataRefused`` otherwise."""
    if not init_data or len(init_data) > MAX_INIT_DATA:
        raise InitDataRefused("missing or too long")
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataRefused("malformed") from None
    fields = dict(pairs)
    if len(fields) != len(pairs):
        raise InitDataRefused("a field is repeated")
    given = fields.get("hash", "")
    expected = hmac.new(_secret_key(bot_token), _data_check_string(fields).encode(),
                        hashlib.sha256).hexdigest()
    # compare_digest takes the same time wherever the first difference is.
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise InitDataRefused("wrong hash")
    now = time.time() if now is None else now
    try:
        auth_date = int(fields.get("auth_date", ""))
        user = json.loads(fields.get("user", ""))
        user_id = user["id"]
    except (ValueError, TypeError, KeyError):
        raise InitDataRefused("no auth_date or user") from None
    if not now - max_age <= auth_date <= now + CLOCK_SKEW:
        raise InitDataRefused("stale")
    if not isinstance(user_id, int) or isinstance(user_id, bool) or user_id <= 0:
        raise InitDataRefused("no user id")
    language = user.get("language_code")
    return WebAppUser(
        id=user_id, first_name=str(user.get("first_name", "")),
        language_code=language if isinstance(language, str) else None,
        start_param=fields.get("start_param") or None, auth_date=auth_date)
