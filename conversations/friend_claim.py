"""The friend's side: a claim link opens the ticket someone sent; the friend accepts it in their
own name (the one Telegram gives, or one they type) or declines it."""

from __future__ import annotations

from telegram import Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    load_claim,
    show,
    store_of,
    user_translator,
    wake_background,
)
from locales import Translator
from storage import chat_state, services
from storage.errors import Refusal
from storage.keys import clean_name
from storage.reads import availability
from storage.reads.views import ChatStep, ClaimView

STEP_ACCEPT_NAME = "accept_name"


def telegram_name(update: Update) -> str:
    user = update.effective_user
    return " ".join(part for part in (user.first_name, user.last_name) if part)


def claim_screen(claim: ClaimView, name: str | None, t: Translator) -> Screen:
    """The ticket a friend was sent: with ``name``, the name it will carry and the button to
    accept it; without, the request to type one."""
    _ = t.gettext
    event = claim.event
    lines = [
        "🎁 " + _("<b>{sender}</b> sent you a ticket!").format(sender=e(claim.inviter_name)),
        "",
        f"<b>{e(t.words(event.name))}</b>",
        "🗓 " + e(t.datetime(event.starts_at, event.timezone)),
        "📍 " + _("{venue}, {city}").format(venue=e(t.words(event.venue_name)),
                                           city=e(event.venue_city)),
        "🎫 " + e(t.words(claim.category)),
        "",
    ]
    rows = []
    if name:
        lines += [_("The ticket will be put in the name of <b>{name}</b>.").format(name=e(name)),
                  e(_("Accept it, or first type the name to print on the ticket."))]
        rows.append([button(_("✅ Accept the ticket"), cb.encode(cb.ACCEPT, claim.invitation_id))])
    else:
        lines.append(e(_("Type the name to print on the ticket.")))
    lines.append(e(_("This link is valid until {date}.").format(
        date=t.datetime_in_zone(claim.expires_at, event.timezone))))
    rows.append([button(_("✖ Decline"), cb.encode(cb.DECLINE, claim.invitation_id))])
    return Screen("\n".join(lines), rows)


async def offered_name(update: Update, context: Context, claim: ClaimView) -> str | None:
    """The friend's Telegram name, if it can be printed and no ticket of the event carries it
    yet (a friend who holds one already must type another); else None: a name is asked for."""
    try:
        name = clean_name(telegram_name(update))
    except Refusal:
        return None
    free = await availability.is_name_free(store_of(context), claim.event.id, name)
    return name if free else None


async def show_claim(update: Update, context: Context, claim: ClaimView) -> None:
    """The claim screen, proposing the friend's Telegram name (when free) until they type one."""
    name = await offered_name(update, context, claim)
    await chat_state.set_step(store_of(context), update.effective_chat.id, STEP_ACCEPT_NAME,
                              invitation_id=claim.invitation_id,
                              payload={"name": name} if name else None)
    t = await user_translator(update, context)
    await show(update, claim_screen(claim, name, t))


async def on_accept_name_typed(update: Update, context: Context, step: ChatStep) -> None:
    name = clean_name(update.effective_message.text or "")
    store = store_of(context)
    claim = await load_claim(update, context, step.invitation_id)
    await availability.refuse_taken_name(store, claim.event.id, name)
    await chat_state.set_step(store, update.effective_chat.id, STEP_ACCEPT_NAME,
                              invitation_id=claim.invitation_id, payload={"name": name})
    t = await user_translator(update, context)
    await show(update, claim_screen(claim, name, t))


async def on_accept(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    step = await chat_state.get_step(store, update.effective_chat.id)
    name = step.payload.get("name") if step and step.invitation_id == data.id() else None
    if not name:
        claim = await load_claim(update, context, data.id())
        await show_claim(update, context, claim)
        return None
    holder = await services.accept_invitation(store, update.effective_user.id, data.id(), name,
                                              chat_id=update.effective_chat.id)
    wake_background(context)
    t = await user_translator(update, context)
    _ = t.gettext
    text = "🎉 " + _("The ticket is yours, in the name of <b>{name}</b>.").format(name=e(holder))
    text += "\n" + e(_("Send /start at any time to see your tickets."))
    await show(update, Screen(text))
    return _("Done!")


async def on_claim_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    claim = await load_claim(update, context, data.id())
    await show_claim(update, context, claim)
    return None


async def on_decline(update: Update, context: Context, data: cb.Callback) -> str | None:
    claim = await load_claim(update, context, data.id())
    t = await user_translator(update, context)
    _ = t.gettext
    text = e(_("Decline the ticket {sender} sent you? It goes back to them.").format(
        sender=claim.inviter_name))
    rows = [[button(_("✖ Yes, decline"), cb.encode(cb.DECLINE_CONFIRM, data.id()))],
            [button(_("« Back"), cb.encode(cb.CLAIM, data.id()))]]
    await show(update, Screen(text, rows))
    return None


async def on_decline_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    store = store_of(context)
    await services.decline_invitation(store, update.effective_user.id, data.id(),
                                      chat_id=update.effective_chat.id)
    wake_background(context)
    t = await user_translator(update, context)
    await show(update, Screen(e(t.gettext("You declined the ticket. The sender has been told."))))
    return None
