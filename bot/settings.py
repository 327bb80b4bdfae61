"""Settings from ``TICKETBOT_*`` environment variables (a ``.env`` file may set them too)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from typing import Annotated

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.db.store import DEFAULT_DATABASE_URL

TELEGRAM_API_URL = "https://api.telegram.org/bot"
_WEBHOOK_URL = re.compile(r"https?://[^\s/?#]+(/[^\s]*)?")
FREE_BROADCAST_RATE = 30.0  # Telegram's bulk limit without paid broadcasts, per second


class Settings(BaseSettings):
    """Everything configurable, with the defaults of docs/spec.md."""

    model_config = SettingsConfigDict(env_prefix="TICKETBOT_", env_file=".env",
                                      extra="ignore")

    token: str | None = None
    database_url: str = DEFAULT_DATABASE_URL
    telegram_api_url: str = TELEGRAM_API_URL
    bot_username: str | None = None
    staff_ids: Annotated[frozenset[int], NoDecode] = frozenset()
    smtp_url: str | None = None
    mail_from: str = "tickets@localhost"
    outbox_dir: str = "outbox"
    secret: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8080
    api_token: str | None = None
    # Gate scanners' bearer tokens, comma-separated (one per device, so one can be withdrawn).
    gate_token: Annotated[tuple[str, ...], NoDecode] = ()
    webhook_url: str | None = None
    # Telegram sends it back with every update; unset, it is derived from the store's secret,
    # so that several processes behind one webhook URL agree on it.
    webhook_secret: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,256}$")
    claim_link_days: int = Field(default=14, ge=1, le=365)
    # Connections each process keeps open, and how many more a burst may open. Unset: sized
    # for one process (storage/db/store.py, POOL); with several processes on one PostgreSQL
    # server, keep their sum under its max_connections.
    database_pool_size: int | None = Field(default=None, ge=1, le=1000)
    database_max_overflow: int | None = Field(default=None, ge=0, le=1000)
    support_contact: str | None = None
    # The public HTTPS URL at which this HTTP server is reached; the Mini App is at its /app/
    # path. Unset: no Mini App buttons in the chat (the page is served all the same).
    webapp_url: str | None = Field(default=None, pattern=r"^https://[^\s/?#]+(/[^\s?#]*)?$")
    # How long the initData Telegram signed for the Mini App is accepted, in seconds.
    webapp_auth_max_age: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    # Messages per second the bot sends on its own (news), shared by every process on the
    # store; replies to users are not counted. Telegram allows about 30 per second, and up to
    # 1,000 with paid broadcasts (allow_paid_broadcast, charged in Stars).
    broadcast_rate: float = Field(default=25.0, gt=0, le=1000)
    paid_broadcast: bool = False
    # Where changes are sent as signed webhooks (Standard Webhooks; docs/webhooks.md): one or
    # more http(s) URLs, comma-separated, and the secret they are signed with (whsec_ and the
    # base64 of 24 to 64 random bytes). Unset: nothing is sent, nothing is queued.
    shop_webhook_url: Annotated[tuple[str, ...], NoDecode] = ()
    shop_webhook_secret: str | None = Field(default=None, repr=False)

    @field_validator("staff_ids", mode="before")
    @classmethod
    def _parse_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(int(part) for part in value.replace(" ", "").split(",") if part)
        return value

    @field_validator("shop_webhook_url", mode="before")
    @classmethod
    def _parse_urls(cls, value: object) -> object:
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        for url in value or ():
            if not _WEBHOOK_URL.fullmatch(url):
                raise ValueError(f"not an http(s) URL: {url[:40]!r}")
        return value

    @field_validator("shop_webhook_secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            key = base64.b64decode(value.removeprefix("whsec_"), validate=True)
        except binascii.Error:
            key = b""
        if not value.startswith("whsec_") or not 24 <= len(key) <= 64:
            raise ValueError("TICKETBOT_SHOP_WEBHOOK_SECRET must be whsec_ and the base64 of "
                             "24 to 64 random bytes")
        return value

    @field_validator("gate_token", mode="before")
    @classmethod
    def _parse_tokens(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value
    @model_validator(mode="after")
    def _broadcast_within_telegram_limits(self) -> Settings:
        if self.broadcast_rate > FREE_BROADCAST_RATE and not self.paid_broadcast:
            raise ValueError(
                f"TICKETBOT_BROADCAST_RATE above {FREE_BROADCAST_RATE:.0f} messages per second "
                "needs TICKETBOT_PAID_BROADCAST=true (Telegram's paid broadcasts)")
        return self

    @model_validator(mode="after")
    def _webhooks_are_signed(self) -> Settings:
        if self.shop_webhook_url and not self.shop_webhook_secret:
            raise ValueError("TICKETBOT_SHOP_WEBHOOK_URL needs TICKETBOT_SHOP_WEBHOOK_SECRET")
        return self

    @property
    def claim_link_ttl(self) -> dt.timedelta:
        return dt.timedelta(days=self.claim_link_days)
