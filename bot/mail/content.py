"""What outgoing e-mails say: an outbox row becomes a ready-to-send ``EmailMessage``, rendered
by the module of its kind (invitation, ticket, reminders, a ticket no longer valid).

The store keeps only what to say (``kind`` and ``params``); the text is rendered at send time.
A mail is written in the recipient's language with the same text in the other language below a
separator, as a plain text part and an HTML alternative laid out by ``bot.mail.layout`` (event
card, one button).
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from bot.mail.invitation import render_invitation_mail
from bot.mail.reminder import render_reminder_mail
from bot.mail.ticket import render_ticket_mail
from bot.mail.ticket_void import render_void_mail
from storage.models import OutboxMail


async def render_outbox_mail(
    session: AsyncSession,
    mail: OutboxMail,
    *,
    secret: bytes,
    bot_username: str,
    sender: str,
) -> EmailMessage:
    """The e-mail an outbox row stands for; ValueError for a kind we cannot render."""
    if mail.kind == "ticket":
        return await render_ticket_mail(session, mail, sender=sender)
    if mail.kind.startswith("reminder_"):
        return await render_reminder_mail(session, mail, secret=secret,
                                          bot_username=bot_username, sender=sender)
    if mail.kind == "ticket_void":
        return await render_void_mail(session, mail, sender=sender)
    if mail.kind == "invitation":
        return await render_invitation_mail(session, mail, secret=secret,
                                            bot_username=bot_username, sender=sender)
    raise ValueError(f"unknown outbox mail kind {mail.kind!r}")
