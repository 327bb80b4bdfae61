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
from conversations.presentation.actions import ACTIONS
from conversations.presentation.summary import menu_notes, ticket_summary
from locales import Translator
from storage.models import TicketState
from storage.reads.views import TicketDetails


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
    rows = [[button(_(action.label), cb.encode(action.code, details.ticket.id))]
            for action in (ACTIONS[name] for name in details.ticket.actions)]
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
    assign = ACTIONS["assign"]
    text = "\n".join([*summary_lines(details, t), "", e(_(assign.prompt))])
    rows = [[button(_(offered.label), cb.encode(offered.code, details.ticket.id))]
            for offered in (ACTIONS[name] for name in assign.offers)]
    rows.append([button(_("« Back"), cb.encode(cb.TICKET, details.ticket.id))])
    await show(update, Screen(text, rows))
