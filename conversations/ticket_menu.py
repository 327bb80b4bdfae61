"""A ticket's menu (the web page's "three dots"): only the actions possible for it right now."""

from __future__ import annotations

from telegram import InlineKeyboardButton, Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    load_ticket,
    show,
    user_translator,
)
from conversations.presentation.summary import menu_notes, ticket_summary
from locales import Translator
from storage.errors import N_
from storage.models import TicketState
from storage.reads.views import TicketDetails

ACTION_BUTTONS = {
    "assign": (N_("👤 Assign the ticket"), cb.ASSIGN),
    "resend": (N_("✉️ Resend the invitation"), cb.RESEND),
    "revoke": (N_("↩️ Revoke the invitation"), cb.REVOKE),
    "rename": (N_("✏️ Correct the name"), cb.RENAME),
    "take_back": (N_("↩️ Take the ticket back"), cb.TAKE_BACK),
    "sell": (N_("💶 Sell this ticket"), cb.SELL),
    "exchange": (N_("🔁 Exchange"), cb.EXCHANGE),
    "change_price": (N_("💶 Change the price"), cb.CHANGE_PRICE),
    "cancel_sale": (N_("✖ Cancel the sale"), cb.CANCEL_SALE),
}


def summary_lines(details: TicketDetails, t: Translator) -> list[str]:
    """The ticket's summary as the chat shows it above its menu and forms: HTML lines."""
    summary = ticket_summary(details, t)
    return ["<b>" + e(summary.title) + "</b>", e(summary.what), "🗓 " + e(summary.when),
            *(e(fact) for fact in summary.facts)]


def menu_screen(details: TicketDetails, t: Translator, viewer: int | None = None) -> Screen:
    """The ticket's menu; ``viewer``, the Telegram user looking, sees "Show ticket" on a
    completed ticket in their own hands."""
    _ = t.gettext
    lines = summary_lines(details, t)
    notes = menu_notes(details, t)
    if notes:
        lines += ["", *(e(note) for note in notes)]
    rows = [[button(_(label), cb.encode(action, details.ticket.id))]
            for label, action in (ACTION_BUTTONS[a] for a in details.ticket.actions)]
    ticket = details.ticket
    if (viewer is not None and ticket.state == TicketState.COMPLETED
            and ticket.holder_telegram_id == viewer):
        rows[:0] = [[button(_("🎫 Show ticket"), cb.encode(cb.TICKET_SHOW, ticket.id))],
                    [button(_("📄 PDF of my tickets of this order"),
                            cb.encode(cb.ORDER_PDF, details.order.id))]]
    if details.event.faq_url and not details.event.resale_enabled:
        rows.append([InlineKeyboardButton(_("❓ Event FAQ"), url=details.event.faq_url)])
    rows.append([button(_("« Back to my order"), cb.encode(cb.OVERVIEW, details.order.id, 0))])
    return Screen("\n".join(lines), rows)


async def show_ticket_menu(update: Update, context: Context, ticket_id: int, *,
                           details: TicketDetails | None = None) -> None:
    """The ticket's menu, read now unless the update has just read it (``details``)."""
    if details is None:
        details = await load_ticket(update, context, ticket_id)
    t = await user_translator(update, context, details.order.language)
    await show(update, menu_screen(details, t, update.effective_user.id))


async def on_ticket_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    await show_ticket_menu(update, context, data.id())


async def on_assign_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    """Assign the ticket: claim it for myself, or send it to a friend."""
    details = await load_ticket(update, context, data.id())
    t = await user_translator(update, context, details.order.language)
    _ = t.gettext
    if "assign" not in details.ticket.actions:
        await show(update, menu_screen(details, t))
        return None
    text = "\n".join([*summary_lines(details, t), "",
                      e(_("Who will use this ticket?"))])
    rows = [
        [button(_("🙋 Claim the ticket for myself"), cb.encode(cb.CLAIM_SELF, details.ticket.id))],
        [button(_("📧 Send to a friend"), cb.encode(cb.INVITE, details.ticket.id))],
        [button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))],
    ]
    await show(update, Screen(text, rows))
