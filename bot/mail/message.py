"""What every outgoing e-mail is made of, below each kind of mail: its headers and laid-out
bodies (``laid_out_message``), and the sign that a mail has lost its purpose (``MailObsolete``)."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import format_datetime

from bot.mail.layout import MailPart, render_ticket_shop_email
from storage.models import OutboxMail


class MailObsolete(Exception):
    """The mail no longer has a purpose (its invitation was revoked, declined or expired)."""


def laid_out_message(mail: OutboxMail, *, sender: str, subject: str,
                     parts: list[MailPart]) -> EmailMessage:
    """A mail of the outbox with its headers and its text and HTML bodies (``parts``, the
    recipient's language first). Its ``Message-ID`` is the outbox row's, so a resend after a
    crash is recognised by the receiving server. Callers add attachments, then
    ``Content-Language`` (set_content drops Content-* headers, add_alternative moves them)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = subject
    message["Date"] = format_datetime(mail.created_at)
    message["Message-ID"] = mail.message_id
    message["Auto-Submitted"] = "auto-generated"
    # Quoted-printable keeps the accents safe on servers without 8BITMIME.
    body = render_ticket_shop_email(parts, subject=subject)
    message.set_content(body.text, cte="quoted-printable")
    message.add_alternative(body.html, subtype="html", cte="quoted-printable")
    return message
