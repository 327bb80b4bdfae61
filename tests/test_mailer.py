"""The mailer end to end: invitations queued by the real services, rendered, and delivered to a
real SMTP server on loopback (aiosmtpd), or written as ``.eml`` files."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import socket
from decimal import Decimal
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy import select, update

from bot.mail.content import render_outbox_mail
from bot.mail.layout import SEPARATOR
from bot.mail.sender import OutboxSender, retry_delay
from bot.mail.transport import (
    EmlDirectoryTransport,
    SmtpSecurity,
    SmtpSettings,
    SmtpTransport,
    parse_smtp_url,
)
from locales import translator
from storage.db.store import Store, utcnow
from storage.models import Barcode, Event, Invitation, Order, OrderAccess, OutboxMail, Ticket
from storage.services import invite_friend, record_user
from tests.conftest import ensure_postgres_schema

BOT_USERNAME = "dreamfest_tickets_bot"
SENDER = "tickets@dreamfest.example"
BUYER = 4242
FRIEND = "friend@example.org"
SUBJECT = "Camille Martin sent you a ticket for Dreamfest 2027 — Saturday"

_serials = itertools.count(1)


# --- a real SMTP server on loopback ----------------------------------------------------------


class RecordingHandler:
    """Accepts every mail (but for refused recipients) and counts SMTP connections."""

    def __init__(self) -> None:
        self.envelopes: list[tuple[str, list[str], bytes]] = []
        self.connections = 0
        self.refused: set[str] = set()
        self.data_delay = 0.0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname
        self.connections += 1
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        session.host_name = hostname
        self.connections += 1
        return f"250 {server.hostname}"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refused:
            return "550 5.1.1 Mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.data_delay)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"

    def messages(self) -> list[EmailMessage]:
        return [
            BytesParser(policy=policy.default).parsebytes(raw) for _from, _to, raw in self.envelopes
        ]


class SmtpServer:
    """An aiosmtpd server that can be stopped and started again on the same port."""

    def __init__(self, port: int, **smtp_options) -> None:
        self.port = port
        self.handler = RecordingHandler()
        self.options = smtp_options
        self.controller: Controller | None = None

    def start(self) -> None:
        self.controller = Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **self.options
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def settings(self) -> SmtpSettings:
        return SmtpSettings(host="127.0.0.1", port=self.port, security=SmtpSecurity.PLAIN)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def smtp_server():
    server = SmtpServer(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def transport(smtp_server):
    transport = SmtpTransport(smtp_server.settings, timeout=5)
    try:
        yield transport
    finally:
        await transport.close()


def make_sender(store: Store, transport, **options) -> OutboxSender:
    return OutboxSender(store, transport, bot_username=BOT_USERNAME, sender=SENDER, **options)


# --- orders and invitations, made with the real services -------------------------------------


async def order_with_tickets(
    store: Store, count: int = 1, *, buyer: str = "Camille Martin", language: str = "en"
) -> list[int]:
    """An order of ``count`` tickets for Dreamfest Saturday that ``BUYER`` may manage, the
    buyer's Telegram app set to ``language``."""
    serial = next(_serials)
    now = utcnow()
    async with store.write() as session:
        if await session.get(Event, "fest-sat") is None:
            session.add(
                Event(
                    id="fest-sat",
                    name="Dreamfest 2027 — Saturday",
                    starts_at=dt.datetime(2027, 7, 17, 12, 0, tzinfo=dt.UTC),
                    timezone="Europe/Paris",
                    venue_name="Parc des Expositions",
                    venue_city="Nantes",
                    currency="EUR",
                    personalisation_enabled=True,
                    exchange_targets=[],
                )
            )
        order = Order(
            number=f"DF-{serial:06d}",
            buyer_name=buyer,
            buyer_email=f"buyer{serial}@example.org",
            language="fr",
            created_at=now,
        )
        session.add(order)
        await session.flush()
        ticket_ids = []
        for k in range(count):
            barcode = f"{serial:08d}{k:08d}"
            ticket = Ticket(
                ref=f"T-{serial}-{k}",
                order_id=order.id,
                event_id="fest-sat",
                category="Pass samedi",
                price=Decimal("89.00"),
                barcode=barcode,
                updated_at=now,
            )
            session.add(ticket)
            await session.flush()
            session.add(Barcode(code=barcode, ticket_id=ticket.id, issued_at=now))
            ticket_ids.append(ticket.id)
        session.add(OrderAccess(telegram_id=BUYER, order_id=order.id, granted_at=now))
    await record_user(store, BUYER, language)
    return ticket_ids


async def invite_friends(store: Store, count: int) -> list[str]:
    """``count`` invitations, each queueing one mail; returns their claim tokens."""
    ticket_ids = await order_with_tickets(store, count)
    return [
        (await invite_friend(store, BUYER, ticket_id, f"friend{n}@example.org")).claim_token
        for n, ticket_id in enumerate(ticket_ids)
    ]


async def outbox(store: Store) -> list[OutboxMail]:
    async with store.read() as session:
        return list(await session.scalars(select(OutboxMail).order_by(OutboxMail.id)))


async def make_due_again(store: Store) -> None:
    async with store.write() as session:
        await session.execute(
            update(OutboxMail).values(next_attempt_at=utcnow() - dt.timedelta(seconds=1))
        )


async def second_store(store: Store) -> Store:
    """Another engine on the same database (and test schema), as a second bot process has."""
    options = await ensure_postgres_schema(store.url) if store.url.startswith("postgresql") else {}
    return Store(store.url, secret="test-secret", **options)


def sections(text: str) -> list[str]:
    return text.split(SEPARATOR)


# --- TICKETBOT_SMTP_URL ----------------------------------------------------------------------


def test_plain_smtp_url_defaults_to_port_25():
    settings = parse_smtp_url("smtp://mail.example.org")
    assert settings == SmtpSettings("mail.example.org", 25, SmtpSecurity.PLAIN)


def test_smtp_url_keeps_an_explicit_port():
    assert parse_smtp_url("smtp://127.0.0.1:2525").port == 2525


def test_starttls_url_defaults_to_port_587():
    settings = parse_smtp_url("smtp+starttls://mail.example.org")
    assert (settings.security, settings.port) == (SmtpSecurity.STARTTLS, 587)


def test_smtps_url_defaults_to_port_465():
    settings = parse_smtp_url("SMTPS://mail.example.org")
    assert (settings.security, settings.port) == (SmtpSecurity.TLS, 465)


def test_credentials_in_smtp_url_are_percent_decoded():
    settings = parse_smtp_url("smtps://alice%40example.org:p%40ss%3Aw0rd@mail.example.org:4650")
    assert settings.username == "alice@example.org"
    assert settings.password == "p@ss:w0rd"
    assert settings.port == 4650
    assert "p@ss" not in repr(settings)


@pytest.mark.parametrize(
    "url", ["http://mail.example.org", "mail.example.org:25", "ftp://alice:s3cret@mail.example.org"]
)
def test_smtp_url_with_another_scheme_is_refused(url):
    with pytest.raises(ValueError, match=r"smtp://, smtp\+starttls:// or smtps://") as refused:
        parse_smtp_url(url)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize("url", ["smtp://", "smtp://:25", "smtps://alice:s3cret@:465"])
def test_smtp_url_without_host_is_refused(url):
    with pytest.raises(ValueError, match="no host") as refused:
        parse_smtp_url(url)
    assert "s3cret" not in str(refused.value)


@pytest.mark.parametrize(
    "url",
    [
        "smtp://alice:s3cret@mail.example.org:port",
        "smtp://alice:s3cret@mail.example.org:70000",
        "smtp://alice:s3/cret@mail.example.org",
    ],
)
def test_bad_smtp_url_error_never_shows_the_password(url):
    with pytest.raises(ValueError) as refused:
        parse_smtp_url(url)
    error: BaseException | None = refused.value
    while error is not None:  # nor does any error chained to it, which a traceback would show
        assert "s3" not in str(error)
        error = error.__cause__ or error.__context__


# --- rendering -------------------------------------------------------------------------------


async def test_invitation_mail_says_everything_in_english_then_in_french(store):
    (ticket_id,) = await order_with_tickets(store, language="en")
    invited = await invite_friend(store, BUYER, ticket_id, FRIEND)
    (mail,) = await outbox(store)
    async with store.read() as session:
        message = await render_outbox_mail(
            session, mail, secret=await store.secret(), bot_username=BOT_USERNAME, sender=SENDER
        )
        invitation = await session.get(Invitation, invited.invitation_id)
    english, french = sections(message.get_body(("plain",)).get_content())
    link = f"https://t.me/{BOT_USERNAME}?start={invited.claim_token}"
    expires = translator("en").datetime(invitation.expires_at, "Europe/Paris")
    for expected in (
        "Camille Martin",
        "Dreamfest 2027 — Saturday",
        "Sat, Jul 17, 2027",
        "2:00",
        "Parc des Expositions, Nantes",
        "Pass samedi",
        link,
        expires,
        "in your own name in Telegram",
    ):
        assert expected in english
    for expected in ("Camille Martin", "sam. 17 juil. 2027", "14:00", "Nantes", link):
        assert expected in french
    assert message["Content-Language"] == "en, fr"


async def test_french_invitation_puts_french_first_and_english_below(store):
    (ticket_id,) = await order_with_tickets(store, language="fr")
    invited = await invite_friend(store, BUYER, ticket_id, FRIEND)
    (mail,) = await outbox(store)
    async with store.read() as session:
        message = await render_outbox_mail(
            session, mail, secret=await store.secret(), bot_username=BOT_USERNAME, sender=SENDER
        )
    french, english = sections(message.get_body(("plain",)).get_content())
    assert "sam. 17 juil. 2027" in french and "Jul 17" not in french
    assert "Sat, Jul 17, 2027" in english
    assert invited.claim_token in french and invited.claim_token in english
    assert message["Content-Language"] == "fr, en"
    html = message.get_body(("html",)).get_content()
    assert html.index('lang="fr"') < html.index('lang="en"')


async def test_html_part_escapes_what_it_quotes(store):
    (ticket_id,) = await order_with_tickets(store, buyer="Camille <b>Martin</b> & Co")
    await invite_friend(store, BUYER, ticket_id, FRIEND)
    (mail,) = await outbox(store)
    async with store.read() as session:
        message = await render_outbox_mail(
            session, mail, secret=await store.secret(), bot_username=BOT_USERNAME, sender=SENDER
        )
    html = message.get_body(("html",)).get_content()
    assert "Camille &lt;b&gt;Martin&lt;/b&gt; &amp; Co" in html
    assert "<b>" not in html
    assert "Camille <b>Martin</b> & Co" in message.get_body(("plain",)).get_content()


async def test_mail_of_unknown_kind_is_refused(store):
    mail = OutboxMail(
        id=1,
        message_id="<x@ticketbot.local>",
        recipient=FRIEND,
        language="en",
        kind="newsletter",
        params={},
        created_at=utcnow(),
        next_attempt_at=utcnow(),
    )
    async with store.read() as session:
        with pytest.raises(ValueError, match="newsletter"):
            await render_outbox_mail(
                session, mail, secret=b"k", bot_username=BOT_USERNAME, sender=SENDER
            )


# --- delivery over SMTP ----------------------------------------------------------------------


async def test_invitation_arrives_with_claim_link_and_proper_headers(store, smtp_server, transport):
    (ticket_id,) = await order_with_tickets(store, language="en")
    invited = await invite_friend(store, BUYER, ticket_id, FRIEND)

    assert await make_sender(store, transport).send_due() == 1

    ((mail_from, rcpt_tos, raw),) = smtp_server.handler.envelopes
    assert (mail_from, rcpt_tos) == (SENDER, [FRIEND])
    (row,) = await outbox(store)
    (message,) = smtp_server.handler.messages()
    assert message["Message-ID"].strip() == row.message_id  # folded on the wire
    assert message["From"] == SENDER and message["To"] == FRIEND
    assert message["Subject"] == SUBJECT
    headers = raw.split(b"\r\n\r\n")[0]
    assert b"=?utf-8?" in headers and "—".encode() not in headers  # RFC 2047 on the wire
    assert message["Content-Language"] == "en, fr"
    assert parsedate_to_datetime(message["Date"]) == row.created_at.replace(microsecond=0)
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content_type() == "multipart/alternative"
    link = f"https://t.me/{BOT_USERNAME}?start={invited.claim_token}"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert link in text and f'href="{link}"' in html
    assert len(sections(text)) == 2 and "sam. 17 juil. 2027" in sections(text)[1]


async def test_sent_mail_is_marked_once_and_not_sent_again(store, smtp_server, transport):
    await invite_friends(store, 1)
    sender = make_sender(store, transport)

    assert await sender.send_due() == 1
    assert await sender.send_due() == 0

    assert len(smtp_server.handler.envelopes) == 1
    (row,) = await outbox(store)
    assert row.sent_at is not None and row.attempts == 1 and row.last_error is None


async def test_mail_waits_while_server_is_down_and_goes_out_once_it_is_back(
    store, smtp_server, transport, caplog
):
    tokens = await invite_friends(store, 1)
    smtp_server.stop()
    sender = make_sender(store, transport)
    before = utcnow()

    with caplog.at_level(logging.DEBUG):
        assert await sender.send_due() == 0

    (row,) = await outbox(store)
    assert row.sent_at is None and row.attempts == 1
    assert row.next_attempt_at >= before + dt.timedelta(seconds=9)
    assert row.last_error == "SMTPConnectError"
    warnings = [r for r in caplog.records if r.name == "bot.mail.sender"]
    assert warnings and warnings[0].levelno == logging.WARNING
    for record in caplog.records:
        logged = record.getMessage()
        assert "friend0" not in logged and tokens[0] not in logged and "t.me" not in logged

    smtp_server.start()
    assert await sender.send_due() == 0  # not due yet: backing off
    await make_due_again(store)
    assert await sender.send_due() == 1
    assert await sender.send_due() == 0
    assert len(smtp_server.handler.envelopes) == 1
    (row,) = await outbox(store)
    assert row.sent_at is not None and row.attempts == 2


async def test_refused_recipient_is_retried_later_without_losing_the_connection(
    store, smtp_server, transport, caplog
):
    await invite_friends(store, 2)
    smtp_server.handler.refused.add("friend0@example.org")

    assert await make_sender(store, transport).send_due() == 1

    refused, accepted = await outbox(store)
    assert refused.sent_at is None and refused.last_error == "SMTPRecipientsRefused 550"
    assert refused.next_attempt_at > utcnow()
    assert accepted.sent_at is not None
    assert smtp_server.handler.connections == 1
    assert all("friend0" not in r.getMessage() for r in caplog.records)


async def test_one_connection_carries_a_whole_batch(store, smtp_server, transport):
    await invite_friends(store, 20)

    assert await make_sender(store, transport).send_due() == 20

    assert len(smtp_server.handler.envelopes) == 20
    assert smtp_server.handler.connections == 1


async def test_connection_closed_by_the_server_is_replaced():
    server = SmtpServer(free_port(), timeout=0.3)  # the server hangs up after 0.3 s idle
    server.start()
    transport = SmtpTransport(server.settings, timeout=5)
    try:
        first = EmailMessage()
        first["From"], first["To"], first["Subject"] = SENDER, FRIEND, "one"
        first.set_content("one")
        await transport.send(first)
        await asyncio.sleep(0.8)
        second = EmailMessage()
        second["From"], second["To"], second["Subject"] = SENDER, FRIEND, "two"
        second.set_content("two")
        await transport.send(second)
    finally:
        await transport.close()
        server.stop()
    assert [m["Subject"] for m in server.handler.messages()] == ["one", "two"]
    assert server.handler.connections == 2


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
async def test_transport_logs_in_with_the_decoded_credentials():
    logins = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    server = SmtpServer(
        free_port(), authenticator=authenticator, auth_required=True, auth_require_tls=False
    )
    server.start()
    settings = parse_smtp_url(f"smtp://mailer%40dreamfest.example:p%40ss@127.0.0.1:{server.port}")
    transport = SmtpTransport(settings, timeout=5)
    try:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = SENDER, FRIEND, "hello"
        message.set_content("hello")
        await transport.send(message)
    finally:
        await transport.close()
        server.stop()
    assert logins == [(b"mailer@dreamfest.example", b"p@ss")]
    assert len(server.handler.envelopes) == 1


async def test_two_senders_racing_send_each_mail_once(store, smtp_server):
    await invite_friends(store, 20)
    # A slow server keeps both senders busy at once, each holding mails the other has seen.
    smtp_server.handler.data_delay = 0.02
    other_store = await second_store(store)
    async with other_store.read() as session:
        await session.execute(select(1))  # connect now, or the first sender is done first
    transports = [SmtpTransport(smtp_server.settings, timeout=5) for _ in range(2)]
    try:
        counts = await asyncio.gather(
            make_sender(store, transports[0]).send_due(),
            make_sender(other_store, transports[1]).send_due(),
        )
    finally:
        for transport in transports:
            await transport.close()
        await other_store.close()

    assert sum(counts) == 20 and min(counts) > 0
    message_ids = [m["Message-ID"].strip() for m in smtp_server.handler.messages()]
    assert len(message_ids) == len(set(message_ids)) == 20
    rows = await outbox(store)
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)


async def test_wake_sends_at_once_instead_of_at_the_next_interval(store, smtp_server, transport):
    sender = make_sender(store, transport)
    stop = asyncio.Event()
    running = asyncio.create_task(sender.run(stop, interval=3600))
    try:
        await asyncio.sleep(0.1)  # the first round found nothing and went to sleep
        await invite_friends(store, 1)
        sender.wake()
        for _ in range(100):
            if smtp_server.handler.envelopes:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
    assert len(smtp_server.handler.envelopes) == 1


def test_retry_delay_doubles_up_to_an_hour():
    assert 9 <= retry_delay(1).total_seconds() <= 10
    assert 18 <= retry_delay(2).total_seconds() <= 20
    assert 36 <= retry_delay(3).total_seconds() <= 40
    assert 3240 <= retry_delay(50).total_seconds() <= 3600


# --- without SMTP: .eml files ----------------------------------------------------------------


async def test_eml_transport_writes_one_file_per_mail_and_a_resend_overwrites_it(
    store, tmp_path: Path
):
    folder = tmp_path / "outbox"
    sender = make_sender(store, EmlDirectoryTransport(folder))
    tokens = await invite_friends(store, 2)

    assert await sender.send_due() == 2

    files = sorted(folder.iterdir())
    assert len(files) == 2 and all(f.suffix == ".eml" for f in files)
    rows = await outbox(store)
    parsed = {}
    for file in files:
        message = BytesParser(policy=policy.default).parsebytes(file.read_bytes())
        parsed[message["Message-ID"].strip()] = message
    assert set(parsed) == {row.message_id for row in rows}
    assert tokens[0] in parsed[rows[0].message_id].get_body(("plain",)).get_content()

    for file in files:
        file.write_text("stale")
    async with store.write() as session:
        await session.execute(update(OutboxMail).values(sent_at=None))
    await make_due_again(store)
    assert await sender.send_due() == 2

    assert sorted(folder.iterdir()) == files  # same names, no temporary files left behind
    for file in files:
        message = BytesParser(policy=policy.default).parsebytes(file.read_bytes())
        assert message["Message-ID"].strip() in parsed and message["Subject"] == SUBJECT
