"""The "your ticket" e-mail: the holder's ticket with its PDF and calendar entry attached.

Queued by the background worker once a ticket has a new holder (``storage/ticket_delivery``),
sent through the outbox like every mail (never lost, retried while SMTP is down). Its
``Message-ID`` is made from the barcode, so one barcode gets one mail. It is rendered at send
time like the invitation mail (recipient's language first, the other below), and not sent at all
once the barcode it carries is no longer the ticket's (a newer mail carries the newer one).
Its body is laid out like every mail (``bot/mail/layout.py``): an event card, then the notes.
"""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from bot.mail.layout import EventCard, MailPart
from bot.mail.message import MailObsolete, laid_out_message
from conversations.presentation import ticket_files
from locales import Translator, mail_languages, translator
from storage.models import OutboxMail
from storage.ticket_delivery import TicketCard, card_for_mail


def ticket_mail_body(t: Translator, card: TicketCard) -> MailPart:
    """What the mail says in one language, on the ticket-shop layout of every mail."""
    _ = t.gettext
    card = card.in_language(t.language)
    return MailPart(
        language=t.language,
        intro=(_("Hello {holder},").format(holder=card.holder_name),
               _("Here is your ticket for {event}.").format(event=card.event_name)),
        card=EventCard(card.event_name, (
            (_("Date"), t.datetime(card.starts_at, card.timezone)),
            (_("Venue"), _("{venue}, {city}").format(venue=card.venue_name,
                                                    city=card.venue_city)),
            (_("Ticket"), card.category),
            (_("Holder"), card.holder_name),
            (_("Reference"), card.ref),
        )),
        notes=(
            _("Your entry code is live: it appears in Telegram only, in the bot's My order, "
              "and changes every few seconds. The attached PDF carries no code; the calendar "
              "file adds the event to your calendar.")
            if card.rotating else
            _("Your e-ticket is attached as a PDF: show its QR code at the entrance, printed or "
              "on your phone. The calendar file adds the event to your calendar."),
            _("If the ticket changes hands or its name is corrected, this code stops being "
              "valid and the new holder receives a new one."),
        ),
        row_format=_("{label}: {value}"),
    )


async def render_ticket_mail(session: AsyncSession, mail: OutboxMail, *,
                             sender: str) -> EmailMessage:
    card = await card_for_mail(session, int(mail.params["ticket_id"]), mail.params["barcode"])
    if card is None:
        raise MailObsolete(f"ticket of outbox mail {mail.id} has another barcode now")
    languages = mail_languages(mail.language)
    main = languages[0]
    parts = [ticket_mail_body(translator(language), card) for language in languages]
    subject = translator(main).gettext("Your ticket for {event}").format(
        event=translator(main).words(card.event_name))

    message = laid_out_message(mail, sender=sender, subject=subject, parts=parts)
    message.add_attachment(await ticket_files.pdf_file((card,), main), maintype="application",
                           subtype="pdf", filename=ticket_files.pdf_name(card))
    # As text with its charset, so that mail clients read the accents of the entry right.
    message.add_attachment((await ticket_files.ics_file(card, main)).decode(), subtype="calendar",
                           charset="utf-8", cte="base64", filename=ticket_files.ics_name(card))
    message["Content-Language"] = ", ".join(languages)
    return message
