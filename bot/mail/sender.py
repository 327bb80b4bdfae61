"""Sending the outbox: mail transports (SMTP, or ``.eml`` files) and the sender that drains
``outbox_mails``.

Services write an ``OutboxMail`` row in the same transaction as its cause; ``OutboxSender``
sends it after the commit. Any number of bot processes may run a sender on the same store:
each mail is claimed with a conditional update that moves its ``next_attempt_at`` forward by a
lease, so only one process sends it at a time, and a process that dies mid-send leaves the mail
to be picked up again when the lease runs out.

Delivery is at least once. A mail is marked sent only after the SMTP server accepted it, so a
failure never loses it: it is retried with exponential backoff. The price is a possible
duplicate when the process dies (or the store fails) between the server's acceptance and the
mark, or when the connection drops after the server accepted the data but before it replied:
the mail is then sent a second time. Its ``Message-ID`` is fixed when the row is written, so
receivers can recognise the copy.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import enum
import hashlib
import logging
import os
import random
import re
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib
from sqlalchemy import select, update

from bot.mail.content import MailObsolete, render_outbox_mail
from storage.db.store import Store, utcnow
from storage.models import OutboxMail

logger = logging.getLogger(__name__)

FIRST_RETRY = dt.timedelta(seconds=10)
LONGEST_RETRY = dt.timedelta(hours=1)


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


# --- the outbox sender -----------------------------------------------------------------------


def retry_delay(attempts: int) -> dt.timedelta:
    """How long to wait after the ``attempts``-th failed try: 10 s, 20 s, 40 s … at most 1 h,
    shortened by up to a tenth so that mails that failed together do not retry together."""
    exponent = min(max(attempts - 1, 0), 20)
    delay = min(FIRST_RETRY * 2**exponent, LONGEST_RETRY)
    return delay * (1 - random.uniform(0, 0.1))


def describe_error(error: BaseException) -> str:
    """The error's class and SMTP code, e.g. ``SMTPRecipientsRefused 550``; never its message,
    which may quote an address."""
    code = getattr(error, "code", None)
    if code is None and isinstance(error, aiosmtplib.SMTPRecipientsRefused) and error.recipients:
        code = error.recipients[0].code
    name = type(error).__name__
    return f"{name} {code}" if isinstance(code, int) else name


class OutboxSender:
    """Sends due outbox mails through a transport, claiming each so that concurrent senders
    never send the same mail at the same time."""

    def __init__(
        self,
        store: Store,
        transport: MailTransport,
        *,
        bot_username: str,
        sender: str,
        batch: int = 50,
        lease: dt.timedelta = dt.timedelta(minutes=2),
    ) -> None:
        self.store = store
        self.transport = transport
        self.bot_username = bot_username
        self.sender = sender
        self.batch = batch
        self.lease = lease
        self._wake = asyncio.Event()
        # Mails the server accepted but the store failed to mark: marked again before sending.
        self._unmarked: set[int] = set()

    def wake(self) -> None:
        """Send now rather than at the next interval (call after a commit that queued mail).
        Call it from the event loop's thread."""
        self._wake.set()

    async def run(self, stop: asyncio.Event, *, interval: float = 2.0) -> None:
        """Send due mails every ``interval`` seconds, or when woken, until ``stop`` is set.
        The transport stays open; its owner closes it."""
        while not stop.is_set():
            self._wake.clear()
            try:
                sent = await self.send_due()
            except Exception as error:
                # SQLAlchemy errors quote their parameters, which may include addresses.
                logger.error("Outbox round failed: %s", describe_error(error))
                sent = 0
            if sent >= self.batch:
                continue  # a full batch went out: more may be waiting
            await self._sleep(stop, interval)

    async def send_due(self) -> int:
        """Send the mails that are due now (at most one batch); returns how many went out."""
        await self._mark_unmarked()
        secret = await self.store.secret()
        async with self.store.read() as session:
            due = (
                await session.execute(
                    select(OutboxMail.id, OutboxMail.next_attempt_at)
                    .where(OutboxMail.sent_at.is_(None), OutboxMail.next_attempt_at <= utcnow())
                    .order_by(OutboxMail.next_attempt_at, OutboxMail.id)
                    .limit(self.batch)
                )
            ).all()
        sent = 0
        for mail_id, seen in due:
            if mail_id in self._unmarked:
                continue
            lease_until = await self._claim(mail_id, seen)
            if lease_until is not None and await self._deliver(mail_id, lease_until, secret):
                sent += 1
        return sent

    async def _claim(self, mail_id: int, seen: dt.datetime) -> dt.datetime | None:
        """Take the mail for one lease; None if another sender took it (or sent it) first."""
        lease_until = utcnow() + self.lease
        async with self.store.write() as session:
            result = await session.execute(
                update(OutboxMail)
                .where(
                    OutboxMail.id == mail_id,
                    OutboxMail.sent_at.is_(None),
                    OutboxMail.next_attempt_at == seen,
                )
                .values(next_attempt_at=lease_until, attempts=OutboxMail.attempts + 1)
                .execution_options(synchronize_session=False)
            )
        return lease_until if result.rowcount == 1 else None

    async def _deliver(self, mail_id: int, lease_until: dt.datetime, secret: bytes) -> bool:
        try:
            async with self.store.read() as session:
                mail = await session.get(OutboxMail, mail_id)
                if mail is None:
                    return False
                message = await render_outbox_mail(
                    session,
                    mail,
                    secret=secret,
                    bot_username=self.bot_username,
                    sender=self.sender,
                )
            # Finish well within the lease, or another sender may take the mail meanwhile.
            async with asyncio.timeout(self.lease.total_seconds() / 2):
                await self.transport.send(message)
        except MailObsolete:
            # A link that already stopped working would only confuse the recipient.
            await self._mark_sent(mail_id, note="obsolete: not sent")
            return False
        except Exception as error:
            await self._record_failure(mail_id, lease_until, error)
            return False
        try:
            await self._mark_sent(mail_id)
        except Exception as error:
            self._unmarked.add(mail_id)
            logger.error(
                "Outbox mail %d was sent but could not be marked: %s",
                mail_id,
                describe_error(error),
            )
        return True

    async def _mark_sent(self, mail_id: int, *, note: str | None = None) -> None:
        async with self.store.write() as session:
            await session.execute(
                update(OutboxMail)
                .where(OutboxMail.id == mail_id, OutboxMail.sent_at.is_(None))
                .values(sent_at=utcnow(), last_error=note)
                .execution_options(synchronize_session=False)
            )

    async def _mark_unmarked(self) -> None:
        for mail_id in sorted(self._unmarked):
            await self._mark_sent(mail_id)
            self._unmarked.discard(mail_id)

    async def _record_failure(
        self, mail_id: int, lease_until: dt.datetime, error: Exception
    ) -> None:
        reason = describe_error(error)
        async with self.store.write() as session:
            attempts = await session.scalar(
                select(OutboxMail.attempts).where(OutboxMail.id == mail_id)
            )
            delay = retry_delay(attempts or 1)
            # Only while our lease holds: after it, another sender owns the mail.
            await session.execute(
                update(OutboxMail)
                .where(
                    OutboxMail.id == mail_id,
                    OutboxMail.sent_at.is_(None),
                    OutboxMail.next_attempt_at == lease_until,
                )
                .values(next_attempt_at=utcnow() + delay, last_error=reason)
                .execution_options(synchronize_session=False)
            )
        # No recipient, no link: logs are not the place for personal data or credentials.
        logger.warning(
            "Outbox mail %d not sent (attempt %d): %s; next try in %d s",
            mail_id,
            attempts or 0,
            reason,
            delay.total_seconds(),
        )

    async def _sleep(self, stop: asyncio.Event, interval: float) -> None:
        waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
        try:
            await asyncio.wait(waiters, timeout=interval, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
