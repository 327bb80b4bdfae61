"""Deep-link tokens: unguessable, short enough for Telegram's ``/start`` parameter, kept hashed.

A token is 24 bytes in URL-safe base64: 32 characters of ``[A-Za-z0-9_-]``, 192 bits. Order
links are random; claim links are a keyed MAC of the invitation, so the mailer can put the link
in the e-mail without the store ever holding it. The store keeps only HMAC-SHA256(secret, token),
looked up on ``/start``; revoking marks that row.

Nor does the update inbox hold a token: before an update is stored, its ``/start`` parameter is
replaced by a *marker*, ``~`` and the parameter's HMAC (``start_marker``), and the handler looks
the link up by that. Whatever follows ``/start`` is marked, a typed marker included, so a marker
known from the store (or its ``link_tokens`` table) opens nothing when typed: it is hashed again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from storage.models import Setting

TOKEN_BYTES = 24
# Telegram accepts 1-64 characters of A-Z, a-z, 0-9, _ and - as a /start parameter.
START_PARAMETER = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SECRET_SETTING = "link_secret"


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def claim_token(secret: bytes, invitation_id: int) -> str:
    """The claim link parameter of an invitation, derived from the secret."""
    mac = hmac.new(secret, f"claim:{invitation_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:TOKEN_BYTES]).decode().rstrip("=")


def hash_token(secret: bytes, token: str) -> str:
    return hmac.new(secret, token.encode("ascii", "replace"), hashlib.sha256).hexdigest()


def looks_like_token(text: str) -> bool:
    return bool(START_PARAMETER.match(text))


MARKER_PREFIX = "~"
_MARKER = re.compile(r"^~[0-9a-f]{64}$")


def start_marker(secret: bytes, parameter: str) -> str:
    """What the inbox keeps of a ``/start`` parameter: ``~`` and its HMAC, never the token."""
    return MARKER_PREFIX + hash_token(secret, parameter)


def link_key(secret: bytes, parameter: str) -> str | None:
    """The ``link_tokens`` key a ``/start`` parameter names — a token or its marker — or None
    if it can name none."""
    if _MARKER.match(parameter):
        return parameter.removeprefix(MARKER_PREFIX)
    return hash_token(secret, parameter) if looks_like_token(parameter) else None


async def load_or_create_secret(session: AsyncSession, configured: str | None) -> bytes:
    """The configured secret, else the one generated on first use and kept in the store."""
    if configured:
        return configured.encode()
    value = secrets.token_urlsafe(32)
    dialect = session.bind.dialect.name if session.bind else ""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    # Two processes starting at once must agree on one secret: the first insert wins.
    await session.execute(
        insert(Setting).values(key=SECRET_SETTING, value=value).on_conflict_do_nothing()
    )
    stored = await session.scalar(select(Setting.value).where(Setting.key == SECRET_SETTING))
    assert stored is not None
    return stored.encode()
