"""The order overview, the home screen: events, then tickets grouped by state, paginated.

Telegram allows 4,096 characters and 100 buttons per message, so a large order is split into
pages of at most ``PAGE_TICKETS`` tickets and ``PAGE_BUDGET`` characters; every ticket is on
exactly one page, reachable with the page buttons.
"""

from __future__ import annotations

from babel.lists import format_list
from telegram import InlineKeyboardButton, Update

from conversations import callbacks as cb
from conversations import mini_app
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    load_order,
    load_ticket,
    show,
    user_translator,
)
from locales import Translator
from storage.errors import N_
from storage.models import TicketState
from storage.reads.views import EventView, OrderView, TicketView

PAGE_TICKETS = 8
PAGE_BUDGET = 2800  # characters of ticket lines per page, well under Telegram's 4,096

SECTIONS = (
    (TicketState.TO_ASSIGN, N_("To assign ({count})")),
    (TicketState.PENDING, N_("Pending ({count})")),
    (TicketState.COMPLETED, N_("Completed ({count})")),
    (TicketState.ON_RESALE, N_("On resale ({count})")),
)


def event_lines(event: EventView, t: Translator) -> list[str]:
    _ = t.gettext
    options = [
        _(name) for enabled, name in (
            (event.personalisation_enabled, N_("personalisation")),
            (event.exchange_enabled, N_("exchange")),
            (event.resale_enabled, N_("resale")),
        ) if enabled
    ]
    offered = (_("Options: {options}").format(options=format_list(options, locale=t.locale))
               if options else _("No ticket options for this event."))
    return [
        f"<b>{e(t.words(event.name))}</b>",
        "🗓 " + e(t.datetime(event.starts_at, event.timezone)),
        "📍 " + _("{venue}, {city}").format(venue=e(t.words(event.venue_name)),
                                           city=e(event.venue_city)),
        e(offered),
    ]


def ticket_line(ticket: TicketView, order: OrderView, t: Translator) -> str:
    line = _state_line(ticket, order, t)
    if ticket.used_at is not None:
        return "• " + t.gettext("{ticket} — ✔ used, scanned in at the gate").format(
            ticket=line.removeprefix("• "))
    return line


def _state_line(ticket: TicketView, order: OrderView, t: Translator) -> str:
    _ = t.gettext
    what = f"{e(t.words(ticket.category))} · {e(ticket.ref)}"
    if len(order.events) > 1:
        what += " · " + e(t.words(order.events[ticket.event_id].name))
    if ticket.state == TicketState.PENDING and ticket.invitation is not None:
        return "• " + _("{ticket} — sent to {email}").format(ticket=what,
                                                            email=e(ticket.invitation.email))
    if ticket.holder_name and ticket.state == TicketState.COMPLETED:
        return "• " + _("{ticket} — {holder}").format(ticket=what, holder=e(ticket.holder_name))
    if ticket.state == TicketState.ON_RESALE and ticket.listing is not None:
        price = t.money(ticket.listing.price, ticket.listing.currency)
        return "• " + _("{ticket} — on resale at {price}").format(ticket=what, price=e(price))
    return "• " + what


def ordered_tickets(order: OrderView) -> list[TicketView]:
    """Tickets in the order the overview lists them: section by section."""
    return [t for state, _ in SECTIONS for t in order.tickets_in(state)]


def paginate(order: OrderView, t: Translator) -> list[list[TicketView]]:
    pages: list[list[TicketView]] = [[]]
    used = 0
    for ticket in ordered_tickets(order):
        size = len(ticket_line(ticket, order, t)) + 40
        if pages[-1] and (len(pages[-1]) >= PAGE_TICKETS or used + size > PAGE_BUDGET):
            pages.append([])
            used = 0
        pages[-1].append(ticket)
        used += size
    return pages


def ticket_button_label(ticket: TicketView, t: Translator) -> str:
    icon = {TicketState.TO_ASSIGN: "🎫", TicketState.PENDING: "✉️",
            TicketState.COMPLETED: "✅", TicketState.ON_RESALE: "💶"}.get(ticket.state, "🎫")
    if ticket.used_at is not None:
        icon = "✔"
    label = (ticket.holder_name if ticket.state == TicketState.COMPLETED
             else t.words(ticket.category))
    return f"{icon} {label} · {ticket.ref}"[:60]


def overview_screen(order: OrderView, t: Translator, page: int = 0,
                    notice: str | None = None, app_button: InlineKeyboardButton | None = None,
                    ) -> Screen:
    _ = t.gettext
    pages = paginate(order, t)
    page = min(max(page, 0), len(pages) - 1)
    shown = pages[page]
    lines = [notice, ""] if notice else []
    lines.append("<b>" + _("My order {number}").format(number=e(order.number)) + "</b>")
    event_ids = {ticket.event_id for ticket in shown} or set(order.events)
    for event in order.events.values():
        if event.id in event_ids:
            lines += ["", *event_lines(event, t)]
    for state, title in SECTIONS:
        here = [ticket for ticket in shown if ticket.state == state]
        if here:
            count = len(order.tickets_in(state))
            lines += ["", "<b>" + e(_(title).format(count=count)) + "</b>"]
            lines += [ticket_line(ticket, order, t) for ticket in here]
    if not order.tickets:
        lines += ["", e(_("This order has no tickets left."))]
    lines += ["", e(_("Choose a ticket to manage it."))]
    if len(pages) > 1:
        lines.append(e(_("Page {page} of {pages}").format(page=page + 1, pages=len(pages))))
    rows = [[button(ticket_button_label(ticket, t), cb.encode(cb.TICKET, ticket.id))]
            for ticket in shown]
    rows += navigation_rows(order.id, page, len(pages), t)
    if app_button is not None:
        rows.append([app_button])
    return Screen("\n".join(lines), rows)


def navigation_rows(order_id: int, page: int, pages: int, t: Translator) -> list[list]:
    _ = t.gettext
    rows = []
    if pages > 1:
        nav = []
        if page > 0:
            nav.append(button(_("◀ Previous"), cb.encode(cb.OVERVIEW, order_id, page - 1)))
        if page < pages - 1:
            nav.append(button(_("Next ▶"), cb.encode(cb.OVERVIEW, order_id, page + 1)))
        rows.append(nav)
    rows.append([button(_("🔄 Refresh"), cb.encode(cb.OVERVIEW, order_id, page)),
                 button(_("⋯ More actions"), cb.encode(cb.MORE, order_id))])
    return rows


async def show_overview(update: Update, context: Context, order_id: int, page: int = 0,
                        notice: str | None = None) -> None:
    """Load the order for this user and show it (edit in place after a button press)."""
    order = await load_order(update, context, order_id)
    await show_loaded_overview(update, context, order, page, notice)


async def show_loaded_overview(update: Update, context: Context, order: OrderView,
                               page: int = 0, notice: str | None = None) -> None:
    t = await user_translator(update, context, order.language)
    await show(update, overview_screen(order, t, page, notice,
                                       mini_app.open_button(context, order.id, t)))
    await mini_app.offer_menu_button(update, context, t)


async def show_order_after_change(update: Update, context: Context, ticket_id: int, icon: str,
                                  template: str, **params) -> Translator:
    """After a ticket changed: its order, with a notice saying what changed (``template``,
    marked with N_, filled with the ticket's ``ref``, amounts in its event's currency, and
    ``params``). Returns the translator."""
    details = await load_ticket(update, context, ticket_id)
    t = await user_translator(update, context, details.order.language)
    values = {"ref": details.ticket.ref, "currency": details.event.currency, **params}
    notice = f"{icon} " + t.fill(template, values, escape=e)
    await show_loaded_overview(update, context, details.order, notice=notice)
    return t


async def on_overview_button(update: Update, context: Context, data: cb.Callback) -> str | None:
    await show_overview(update, context, data.id(0), max(data.id(1), 0))
