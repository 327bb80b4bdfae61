"""The reminder e-mails (storage/services/reminders.py): to an invited friend whose link is about to
expire, and to a buyer who never opened the bot and still has tickets to assign. Rendered at
send time like every outbox mail; a reminder whose reason is gone by then (the invitation was
claimed, the tickets were assigned) is not sent at all."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.mail.invitation import invitation_part, load_invitation
from bot.mail.layout import EventCard, MailPart
from bot.mail.message import MailObsolete, laid_out_message
from locales import Translator, mail_languages, translator
from storage.models import Event, Order, OutboxMail, Ticket, TicketState


async def render_reminder_mail(session: AsyncSession, mail: OutboxMail, *, secret: bytes,
                               bot_username: str, sender: str) -> EmailMessage:
    languages = mail_languages(mail.language)
    main = languages[0]
    if mail.kind == "reminder_invitation":
        facts = await load_invitation(session, mail, secret=secret, bot_username=bot_username)

        def part(t: Translator) -> MailPart:
            base = invitation_part(t, facts)
            intro = t.gettext("A reminder: {inviter} sent you a ticket for {event}, and the "
                              "link to claim it expires on {expires}.").format(
                inviter=facts.inviter_name, event=t.words(facts.event_name),
                expires=t.datetime_in_zone(facts.expires_at, facts.event_timezone))
            return dataclasses.replace(base, intro=(t.gettext("Hello,"), intro))

        subject = translator(main).gettext("Reminder: your ticket for {event} is waiting").format(
            event=translator(main).words(facts.event_name))
    elif mail.kind == "reminder_personalise":
        order = await session.get(Order, int(mail.params["order_id"]))
        event = await session.get(Event, mail.params["event_id"])
        left = await session.scalar(
            select(func.count()).select_from(Ticket)
            .where(Ticket.order_id == int(mail.params["order_id"]),
                   Ticket.event_id == mail.params["event_id"],
                   Ticket.state == TicketState.TO_ASSIGN))
        if order is None or event is None or not left or event.personalisation_deadline is None:
            raise MailObsolete(f"reminder {mail.id}: nothing left to assign")

        def part(t: Translator) -> MailPart:
            _ = t.gettext
            deadline = t.datetime(event.personalisation_deadline, event.timezone)
            text = t.ngettext(
                "{count} ticket of your order {number} still has no name. Assign it before "
                "{deadline}, or it cannot be used.",
                "{count} tickets of your order {number} still have no name. Assign them "
                "before {deadline}, or they cannot be used.", left)
            return MailPart(
                language=t.language,
                intro=(_("Hello {name},").format(name=order.buyer_name),
                       text.format(count=t.number(left), number=order.number,
                                   deadline=deadline)),
                card=EventCard(t.words(event.name), (
                    (_("Date"), t.datetime(event.starts_at, event.timezone)),
                    (_("Venue"), _("{venue}, {city}").format(venue=t.words(event.venue_name),
                                                             city=event.venue_city)),
                )),
                notes=(_("Open the link in your order confirmation e-mail to assign the "
                         "tickets in Telegram."),),
                row_format=_("{label}: {value}"),
            )

        subject = translator(main).gettext("Reminder: tickets to assign for {event}").format(
            event=translator(main).words(event.name))
    else:
        raise ValueError(f"unknown outbox mail kind {mail.kind!r}")
    parts = [part(translator(language)) for language in languages]
    message = laid_out_message(mail, sender=sender, subject=subject, parts=parts)
    message["Content-Language"] = ", ".join(languages)
    return message
