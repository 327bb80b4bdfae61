"""The invitation e-mail: a friend was sent a ticket and gets the link that claims it in
Telegram. The link is recomputed from the secret at send time, never stored; a mail whose
invitation is no longer pending (revoked, declined, expired) is not sent at all."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.ext.asyncio import AsyncSession

from bot.mail.layout import Button, EventCard, MailPart
from bot.mail.message import MailObsolete, laid_out_message
from locales import Translator, mail_languages, translator
from storage.models import InvitationState, OutboxMail, WordsValue
from storage.reads.loading import invitation_with_ticket
from storage.tokens import claim_token


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


async def render_invitation_mail(session: AsyncSession, mail: OutboxMail, *, secret: bytes,
                                 bot_username: str, sender: str) -> EmailMessage:
    """The invitation to claim a ticket; MailObsolete once the invitation is no longer pending."""
    facts = await load_invitation(session, mail, secret=secret, bot_username=bot_username)
    languages = mail_languages(mail.language)
    main = languages[0]
    parts = [invitation_part(translator(language), facts) for language in languages]
    subject = (
        translator(main)
        .gettext("{inviter} sent you a ticket for {event}")
        .format(inviter=facts.inviter_name, event=translator(main).words(facts.event_name))
    )

    message = laid_out_message(mail, sender=sender, subject=subject, parts=parts)
    message["Content-Language"] = ", ".join(languages)
    return message


async def load_invitation(
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


def invitation_part(t: Translator, facts: InvitationFacts) -> MailPart:
    _ = t.gettext
    event, venue, category = (t.words(facts.event_name), t.words(facts.venue_name),
                              t.words(facts.category))
    return MailPart(
        language=t.language,
        intro=(_("Hello,"), _("{inviter} sent you a ticket for {event}.").format(
            inviter=facts.inviter_name, event=event)),
        card=EventCard(event, (
            (_("Date"), t.datetime(facts.event_starts_at, facts.event_timezone)),
            (_("Venue"), _("{venue}, {city}").format(venue=venue, city=facts.venue_city)),
            (_("Ticket"), category),
        )),
        button=Button(_("Claim my ticket in Telegram"), facts.link,
                      lead=_("Open this link to claim the ticket in your own name in Telegram:")),
        notes=(
            _("The link works once and expires on {expires}.").format(
                expires=t.datetime_in_zone(facts.expires_at, facts.event_timezone)),
            _("If you do not want the ticket, open the link and decline it, so that "
              "{inviter} can give it to someone else.").format(inviter=facts.inviter_name),
        ),
        row_format=_("{label}: {value}"),
    )
