"""What outgoing e-mails say: an outbox row becomes a ready-to-send ``EmailMessage``.

The store keeps only what to say (``kind`` and ``params``); the text is rendered here at send
time, so the claim link is recomputed from the secret and never stored. A mail is written in
the recipient's language with the same text in the other language below a separator, as a plain
text part and an HTML alternative.
"""

from __future__ import annotations

import datetime as dt
import html
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy.ext.asyncio import AsyncSession

from locales import LANGUAGES, Translator, pick_language, translator
from storage.models import InvitationState, OutboxMail, WordsValue
from storage.reading import invitation_with_ticket
from storage.tokens import claim_token

# Between the recipient's language and the other one, in the text part.
SEPARATOR = "-" * 60


@dataclass(frozen=True)
class Paragraph:
    """One block of the body: lines of text, optionally followed by a link on its own line."""

    lines: tuple[str, ...]
    link: str | None = None
    link_label: str | None = None


@dataclass(frozen=True)
class InvitationFacts:
    """Everything an invitation mail mentions, loaded once for both languages (the event's words
    as imported, one string or texts by language: each section picks its own)."""

    inviter_name: str
    event_name: WordsValue
    event_starts_at: dt.datetime
    event_timezone: str
    venue_name: WordsValue
    venue_city: str
    category: WordsValue
    link: str
    expires_at: dt.datetime


class MailObsolete(Exception):
    """The mail no longer has a purpose (its invitation was revoked, declined or expired)."""


async def render_outbox_mail(
    session: AsyncSession,
    mail: OutboxMail,
    *,
    secret: bytes,
    bot_username: str,
    sender: str,
) -> EmailMessage:
    """The e-mail an outbox row stands for; ValueError for a kind we cannot render."""
    if mail.kind != "invitation":
        raise ValueError(f"unknown outbox mail kind {mail.kind!r}")
    facts = await _load_invitation(session, mail, secret=secret, bot_username=bot_username)
    main = pick_language(mail.language)
    other = next(language for language in LANGUAGES if language != main)
    sections = [
        (translator(language), _invitation_body(translator(language), facts))
        for language in (main, other)
    ]
    subject = (
        translator(main)
        .gettext("{inviter} sent you a ticket for {event}")
        .format(inviter=facts.inviter_name, event=translator(main).words(facts.event_name))
    )

    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps the accents safe on servers without 8BITMIME.
    message.set_content(_as_text(sections), cte="quoted-printable")
    message.add_alternative(
        _as_html(sections, subject, main), subtype="html", cte="quoted-printable"
    )
    # Only now: set_content drops Content-* headers, and add_alternative moves them to a part.
    message["Content-Language"] = f"{main}, {other}"
    return message


async def _load_invitation(
    session: AsyncSession, mail: OutboxMail, *, secret: bytes, bot_username: str
) -> InvitationFacts:
    invitation_id = int(mail.params["invitation_id"])
    row = await invitation_with_ticket(session, invitation_id)
    if row is None:
        raise ValueError(f"invitation {invitation_id} of outbox mail {mail.id} not found")
    invitation, ticket, event = row
    if invitation.state != InvitationState.PENDING:
        raise MailObsolete(f"invitation {invitation_id} is {invitation.state}")
    token = claim_token(secret, invitation.id)
    return InvitationFacts(
        inviter_name=invitation.inviter_name,
        event_name=event.name,
        event_starts_at=event.starts_at,
        event_timezone=event.timezone,
        venue_name=event.venue_name,
        venue_city=event.venue_city,
        category=ticket.category,
        link=f"https://t.me/{bot_username.lstrip('@')}?start={token}",
        expires_at=invitation.expires_at,
    )


def _invitation_body(t: Translator, facts: InvitationFacts) -> list[Paragraph]:
    event, venue, category = (t.words(facts.event_name), t.words(facts.venue_name),
                              t.words(facts.category))
    when = t.datetime(facts.event_starts_at, facts.event_timezone)
    expires = t.datetime(facts.expires_at, facts.event_timezone)
    return [
        Paragraph((t.gettext("Hello,"),)),
        Paragraph(
            (
                t.gettext("{inviter} sent you a ticket for {event}.").format(
                    inviter=facts.inviter_name, event=event
                ),
            )
        ),
        Paragraph(
            (
                t.gettext("Event: {event}").format(event=event),
                t.gettext("Date: {when}").format(when=when),
                t.gettext("Venue: {venue}, {city}").format(
                    venue=venue, city=facts.venue_city
                ),
                t.gettext("Ticket: {category}").format(category=category),
            )
        ),
        Paragraph(
            (t.gettext("Open this link to claim the ticket in your own name in Telegram:"),),
            link=facts.link,
            link_label=t.gettext("Claim my ticket in Telegram"),
        ),
        Paragraph(
            (
                t.gettext("The link works once and expires on {expires}.").format(expires=expires),
                t.gettext(
                    "If you do not want the ticket, open the link and decline it, so that "
                    "{inviter} can give it to someone else."
                ).format(inviter=facts.inviter_name),
            )
        ),
    ]


def _as_text(sections: list[tuple[Translator, list[Paragraph]]]) -> str:
    rendered = []
    for _t, paragraphs in sections:
        blocks = []
        for paragraph in paragraphs:
            lines = list(paragraph.lines)
            if paragraph.link:
                lines.append(paragraph.link)
            blocks.append("\n".join(lines))
        rendered.append("\n\n".join(blocks))
    return f"\n\n{SEPARATOR}\n\n".join(rendered) + "\n"


def _as_html(
    sections: list[tuple[Translator, list[Paragraph]]], subject: str, language: str
) -> str:
    parts = []
    for t, paragraphs in sections:
        blocks = []
        for paragraph in paragraphs:
            lines = "<br>\n".join(html.escape(line) for line in paragraph.lines)
            blocks.append(f"<p>{lines}</p>")
            if paragraph.link:
                link = html.escape(paragraph.link)
                label = html.escape(paragraph.link_label or paragraph.link)
                blocks.append(f'<p><a href="{link}">{label}</a><br>\n{link}</p>')
        parts.append(f'<div lang="{html.escape(t.language)}">\n' + "\n".join(blocks) + "\n</div>")
    body = "\n<hr>\n".join(parts)
    return (
        f'<!DOCTYPE html>\n<html lang="{html.escape(language)}">\n<head>\n'
        f'<meta charset="utf-8">\n<title>{html.escape(subject)}</title>\n</head>\n'
        f"<body>\n{body}\n</body>\n</html>\n"
    )
