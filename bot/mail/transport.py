"""Mail transports: how a rendered message leaves, through SMTP (``TICKETBOT_SMTP_URL``) or
as ``.eml`` files in a folder when no server is configured."""

from __future__ import annotations

import asyncio
import enum
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

# --- configuration ---------------------------------------------------------------------------


class SmtpSecurity(enum.StrEnum):
    PLAIN = "plain"
    STARTTLS = "starttls"
    TLS = "tls"


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to reach the SMTP server, as parsed from ``TICKETBOT_SMTP_URL``."""

    host: str
    port: int
    security: SmtpSecurity
    username: str | None = None
    password: str | None = field(default=None, repr=False)


_SCHEMES = {
    "smtp": (SmtpSecurity.PLAIN, 25),
    "smtp+starttls": (SmtpSecurity.STARTTLS, 587),
    "smtps": (SmtpSecurity.TLS, 465),
}


def parse_smtp_url(url: str) -> SmtpSettings:
    """Read ``smtp://``, ``smtp+starttls://`` or ``smtps://`` ``[user:password@]host[:port]``.

    User and password are percent-decoded (write ``@`` as ``%40``). Error messages never repeat
    the URL, which may hold the password.
    """
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        raise ValueError("TICKETBOT_SMTP_URL is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise ValueError(
            "TICKETBOT_SMTP_URL must start with smtp://, smtp+starttls:// or smtps://"
            + (f" (not {scheme}://)" if scheme else "")
        )
    security, default_port = _SCHEMES[scheme]
    if not parts.hostname:
        raise ValueError("TICKETBOT_SMTP_URL names no host (expected scheme://host:port)")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            "TICKETBOT_SMTP_URL takes only [user:password@]host[:port]; percent-encode "
            "'/', '?', '#' and '@' in the user name or password"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if port is not None and not 1 <= port <= 65535:
        raise ValueError("TICKETBOT_SMTP_URL has an invalid port (expected 1-65535)")
    return SmtpSettings(
        host=parts.hostname,
        port=port or default_port,
        security=security,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
    )


# --- transports ------------------------------------------------------------------------------


class MailTransport(Protocol):
    """Something that delivers a rendered message, raising if it was not accepted."""

    async def send(self, message: EmailMessage) -> None: ...

    async def close(self) -> None: ...


class SmtpTransport:
    """An SMTP client that keeps one connection open across messages.

    A connection the server has dropped is replaced; a refusal by the server (or a network
    error on a fresh connection) is raised, so the sender retries the mail later.
    """

    def __init__(self, settings: SmtpSettings, *, timeout: float = 30) -> None:
        self.settings = settings
        self.timeout = timeout
        self._client: aiosmtplib.SMTP | None = None
        # One SMTP conversation at a time on the shared connection.
        self._lock = asyncio.Lock()

    async def send(self, message: EmailMessage) -> None:
        async with self._lock:
            reused = self._client is not None and self._client.is_connected
            client = self._client if reused else await self._connect()
            assert client is not None
            try:
                await self._send_on(client, message)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                # Servers close idle connections (RFC 5321 allows it after 5 minutes) and we
                # may not have noticed yet: one more try on a new connection.
                if not reused:
                    raise
                await self._send_on(await self._connect(), message)

    async def close(self) -> None:
        async with self._lock:
            client, self._client = self._client, None
            if client is None:
                return
            try:
                if client.is_connected:
                    await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                pass
            finally:
                client.close()

    async def _connect(self) -> aiosmtplib.SMTP:
        self._drop()
        settings = self.settings
        client = aiosmtplib.SMTP(
            hostname=settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            timeout=self.timeout,
            use_tls=settings.security is SmtpSecurity.TLS,
            # False, not None: aiosmtplib would otherwise upgrade opportunistically and then
            # refuse a server whose certificate does not match, on a URL that said "plain".
            start_tls=settings.security is SmtpSecurity.STARTTLS,
        )
        try:
            await client.connect()
        except BaseException:
            client.close()
            raise
        self._client = client
        return client

    async def _send_on(self, client: aiosmtplib.SMTP, message: EmailMessage) -> None:
        try:
            await client.send_message(message)
        except (aiosmtplib.SMTPResponseException, aiosmtplib.SMTPRecipientsRefused):
            # A refusal: aiosmtplib has reset the envelope, the connection is still good.
            if not client.is_connected:
                self._drop()
            raise
        except BaseException:
            # Timeout, cancellation or network error: the conversation is in an unknown state.
            self._drop()
            raise

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class EmlDirectoryTransport:
    """Writes each message as ``<Message-ID>.eml`` into a folder, for when no SMTP server is
    configured. A re-sent mail overwrites its file; a reader never sees a half-written one."""

    def __init__(self, path: str | os.PathLike[str] = "outbox") -> None:
        self.path = Path(path)

    async def send(self, message: EmailMessage) -> None:
        await asyncio.to_thread(self._write_file, message)

    async def close(self) -> None:
        return None

    def _write_file(self, message: EmailMessage) -> None:
        message_id = message["Message-ID"]
        if not message_id:
            raise ValueError("a mail without Message-ID cannot be written to the outbox folder")
        self.path.mkdir(parents=True, exist_ok=True)
        target = self.path / eml_filename(str(message_id))
        data = message.as_bytes()
        descriptor, temporary = tempfile.mkstemp(dir=self.path, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, target)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


_UNSAFE_IN_FILENAME = re.compile(r"[^A-Za-z0-9._@+-]")


def eml_filename(message_id: str) -> str:
    """A safe file name for a Message-ID; distinct IDs get distinct names."""
    raw = message_id.strip().removeprefix("<").removesuffix(">")
    name = _UNSAFE_IN_FILENAME.sub("_", raw).lstrip(".")[:150]
    if name != raw or not name:
        # The replacement could make two IDs look alike; a hash of the original keeps them apart.
        name = f"{name}-{hashlib.sha256(message_id.encode()).hexdigest()[:12]}"
    return f"{name}.eml"


def make_transport(
    smtp_url: str | None, *, outbox: str | os.PathLike[str] = "outbox"
) -> SmtpTransport | EmlDirectoryTransport:
    """SMTP when a URL is configured, else ``.eml`` files in the outbox folder."""
    if smtp_url:
        return SmtpTransport(parse_smtp_url(smtp_url))
    return EmlDirectoryTransport(outbox)
