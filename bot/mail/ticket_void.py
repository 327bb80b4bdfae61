"""The "no longer valid" e-mail: the holder of a ticket that was exchanged (storage/services/
exchange.py) learns that the ticket in their mailbox — its PDF, its QR code — no longer gets
them in. Rendered at send time like every mail, in the holder's language first."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from bot.mail.layout import EventCard, MailPart
from bot.mail.message import MailObsolete, laid_out_message
from locales import Translator, mail_languages, translator
from storage.models import Event, OutboxMail, Ticket


def void_mail_body(t: Translator, ticket: Ticket, event: Event, holder: str) -> MailPart:
    """What the mail says in one language."""
    _ = t.gettext
    name = t.words(event.name)
    return MailPart(
        language=t.language,
        intro=(_("Hello {holder},").format(holder=holder) if holder else _("Hello,"),
               _("Ticket {ref} for {event} is no longer valid: the person who manages the "
                 "order exchanged it for another session.").format(ref=ticket.ref, event=name)),
        card=EventCard(name, (
            (_("Date"), t.datetime(event.starts_at, event.timezone)),
            (_("Ticket"), t.words(ticket.category)),
            (_("Reference"), ticket.ref),
        )),
        notes=(_("Its QR code will be refused at the entrance: please delete the ticket we sent "
                 "you. If you are still coming, ask the person who sent it to you."),),
        row_format=_("{label}: {value}"),
    )


async def render_void_mail(session: AsyncSession, mail: OutboxMail, *,
                           sender: str) -> EmailMessage:
    ticket = await session.get(Ticket, int(mail.params["ticket_id"]))
    event = await session.get(Event, ticket.event_id) if ticket is not None else None
    if ticket is None or event is None:
        raise MailObsolete(f"void mail {mail.id}: the ticket is gone")
    languages = mail_languages(mail.language)
    main = translator(languages[0])
    holder = str(mail.params.get("holder") or "")
    parts = [void_mail_body(translator(language), ticket, event, holder)
             for language in languages]
    subject = main.gettext("Your ticket for {event} is no longer valid").format(
        event=main.words(event.name))
    message = laid_out_message(mail, sender=sender, subject=subject, parts=parts)
    message["Content-Language"] = ", ".join(languages)
    return message
