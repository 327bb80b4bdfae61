"""Support staff commands: ``/status ORDER``, ``/find TEXT``, ``/history TICKET`` and
``/resend ORDER``, for the Telegram users listed in ``TICKETBOT_STAFF_IDS``.

Anyone else gets exactly the answer to an unknown command, so the commands reveal neither who
is staff nor which orders exist. Long answers are split into pages that fit Telegram's 4,096
characters, turned with inline buttons; every page press checks again that the user is staff.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from babel.lists import format_list
from telegram import Update
from telegram.ext import Application, CommandHandler

from conversations import callbacks as cb
from conversations import event_reports
from conversations.common import (
    Context,
    Screen,
    button,
    command_argument,
    e,
    is_staff,
    refusal_text,
    say,
    show,
    store_of,
    user_translator,
    wake_background,
)
from conversations.presentation.words import state_word
from conversations.start import on_unknown_command
from locales import Translator
from storage.errors import N_, Refusal
from storage.models import ActorKind
from storage.reads.staff import AuditLine, FoundOrders, OrderStatus, StaffTicket, TicketHistory
from storage.services import staff

# Characters of text per page, measured in UTF-16 units like Telegram, well under 4,096 so that
# the page line and HTML-escaped names never push a page over.
PAGE_BUDGET = 3500

ACTORS = {
    ActorKind.BUYER: N_("buyer {id}"),
    ActorKind.FRIEND: N_("friend {id}"),
    ActorKind.STAFF: N_("staff {id}"),
    ActorKind.SYSTEM: N_("system"),
}

# What the audit history's actions mean; an action not listed here is shown as recorded.
ACTIONS = {
    "order_imported": N_("order imported"),
    "tickets_imported": N_("tickets added by an import"),
    "order_link_created": N_("order link created"),
    "order_links_revoked": N_("order links withdrawn"),
    "order_opened": N_("order opened in Telegram"),
    "claimed_for_self": N_("claimed by the buyer"),
    "invited": N_("sent to a friend"),
    "invitation_resent": N_("invitation sent again"),
    "invitation_revoked": N_("invitation withdrawn"),
    "invitation_accepted": N_("claimed by the friend"),
    "invitation_declined": N_("declined by the friend"),
    "invitation_expired": N_("invitation expired"),
    "holder_renamed": N_("name corrected"),
    "taken_back": N_("taken back"),
    "listed_for_resale": N_("offered for resale"),
    "resale_price_changed": N_("resale price changed"),
    "resale_cancelled": N_("resale cancelled"),
    "resale_sold": N_("sold on resale"),
    "exchanged": N_("exchanged"),
    "gate_ok": N_("let in at the gate"),
    "gate_already_scanned": N_("scanned again at the gate: already used"),
    "gate_void": N_("void barcode scanned at the gate"),
    "gate_unknown": N_("unknown barcode scanned at the gate"),
    "gate_stale": N_("a picture, not the live code, scanned at the gate"),
    "staff_viewed": N_("order viewed by staff"),
    "staff_viewed_history": N_("history viewed by staff"),
    "staff_viewed_stats": N_("event figures viewed by staff"),
    "staff_exported": N_("event's tickets exported"),
}

# Details of an audit entry worth showing next to it, in this order.
SHOWN_DETAILS = ("holder", "email", "price", "gate")

StaffHandler = Callable[[Update, Context], Awaitable[None]]
ButtonHandler = Callable[[Update, Context, cb.Callback], Awaitable[str | None]]


def staff_command(handler: StaffHandler) -> StaffHandler:
    """Run the command for staff only; anyone else gets the unknown-command answer."""

    async def guarded(update: Update, context: Context) -> None:
        if not is_staff(update, context):
            await on_unknown_command(update, context)
            return
        try:
            # Searches and reports may read a whole event: not on the loop's thread.
            with store_of(context).long_statements():
                await handler(update, context)
        except Refusal as refusal:
            t = await user_translator(update, context)
            await say(update, refusal_text(refusal, t))

    guarded.__name__ = handler.__name__
    return guarded


def staff_button(handler: ButtonHandler) -> ButtonHandler:
    """A staff page or report button: its statements may take long, as its command's."""

    async def pressed(update: Update, context: Context, data: cb.Callback) -> str | None:
        with store_of(context).long_statements():
            return await handler(update, context, data)

    pressed.__name__ = handler.__name__
    return pressed


def require_staff(update: Update, context: Context) -> None:
    """A page button pressed by someone not (or no longer) on the staff reads as not found."""
    if not is_staff(update, context):
        raise Refusal("not_found")


# --- paging ----------------------------------------------------------------------------------


def _units(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def paginate(blocks: list[str], budget: int, separator: str = "\n\n") -> list[list[str]]:
    """Blocks of lines packed into pages of at most ``budget`` characters; a block is never
    split, so a ticket and its lines stay together."""
    pages: list[list[str]] = [[]]
    used = 0
    for block in blocks:
        size = _units(block) + len(separator)
        if pages[-1] and used + size > budget:
            pages.append([])
            used = 0
        pages[-1].append(block)
        used += size
    return pages


def paged_screen(
    header: list[str],
    blocks: list[str],
    page: int,
    action: str,
    item_id: int,
    t: Translator,
    *,
    separator: str = "\n\n",
) -> Screen:
    """One page of a long answer, with the header on every page and buttons to turn pages;
    ``separator`` goes between the blocks of a page."""
    _ = t.gettext
    head = "\n".join(header)
    pages = paginate(blocks, PAGE_BUDGET - _units(head) - 60, separator)
    page = min(max(page, 0), len(pages) - 1)
    parts = [head, separator.join(pages[page])]
    navigation = []
    if len(pages) > 1:
        parts.append(e(_("Page {page} of {pages}").format(page=page + 1, pages=len(pages))))
        if page > 0:
            navigation.append(button(_("◀ Previous"), cb.encode(action, item_id, page - 1)))
        if page < len(pages) - 1:
            navigation.append(button(_("Next ▶"), cb.encode(action, item_id, page + 1)))
    rows = [navigation] if navigation else []
    rows.append([button(_("🔄 Refresh"), cb.encode(action, item_id, page))])
    return Screen("\n\n".join(parts), rows)


# --- rendering -------------------------------------------------------------------------------


def actor_text(line: AuditLine, t: Translator) -> str:
    template = ACTORS.get(line.actor_kind, "{id}")
    return t.gettext(template).format(id=line.actor_telegram_id or "?")


def audit_text(line: AuditLine, timezone: str, t: Translator, *, with_ticket: bool) -> str:
    label = ACTIONS.get(line.action)
    what = e(t.gettext(label) if label else line.action)
    shown = [line.ticket_ref] if with_ticket and line.ticket_ref else []
    if "old" in line.details and "new" in line.details:
        shown.append(f"{line.details['old']} → {line.details['new']}")
    shown += [str(line.details[key]) for key in SHOWN_DETAILS if line.details.get(key)]
    if line.details.get("offline"):
        shown.append(t.gettext("scanned offline"))
    if line.details.get("conflict"):
        shown.append(t.gettext("⚠️ double entry: also let in at gate {gate}").format(
            gate=line.details.get("other_gate") or "—"))
    what += "".join(" · " + e(value) for value in shown)
    return "• " + t.gettext("{when} — {what} — {who}").format(
        when=e(t.datetime(line.at, timezone)), what=what, who=e(actor_text(line, t))
    )


def ticket_block(ticket: StaffTicket, timezone: str, t: Translator) -> str:
    _ = t.gettext
    state = state_word(ticket.state, t)
    lines = [
        f"• <b>{e(ticket.ref)}</b> · {e(t.words(ticket.category))} · "
        f"{e(t.words(ticket.event_name))}",
        "  " + e(_("Status: {state}").format(state=state)),
    ]
    if ticket.used_at is not None:
        lines.append("  " + e(_("Used: scanned in at the gate on {date}.").format(
            date=t.datetime(ticket.used_at, timezone))))
    if ticket.entry_gates:
        gates = format_list(list(ticket.entry_gates), locale=t.language)
        lines.append("  " + e(_("⚠️ Let in twice by devices that were offline: at gates "
                                "{gates}.").format(gates=gates)))
    if ticket.holder_name:
        lines.append("  " + e(_("In the name of: {holder}").format(holder=ticket.holder_name)))
    invited = ticket.invitation.email if ticket.invitation is not None else None
    if ticket.holder_email and ticket.holder_email != invited:
        lines.append("  " + e(_("Holder e-mail: {email}").format(email=ticket.holder_email)))
    if ticket.holder_telegram_id:
        lines.append("  " + e(_("Holder's Telegram id: {id}").format(id=ticket.holder_telegram_id)))
    if ticket.invitation is not None:
        invitation = ticket.invitation
        lines.append(
            "  "
            + e(
                _("Invitation to {email}: sent {sent}, valid until {expires}").format(
                    email=invitation.email,
                    sent=t.datetime(invitation.last_sent_at, timezone),
                    expires=t.datetime(invitation.expires_at, timezone),
                )
            )
        )
    if ticket.listing is not None:
        listing = ticket.listing
        lines.append(
            "  "
            + e(
                _("On resale at {price} since {date} (listing {id})").format(
                    price=t.money(listing.price, listing.currency),
                    date=t.datetime(listing.listed_at, timezone),
                    id=listing.id,
                )
            )
        )
    return "\n".join(lines)


def status_screen(status: OrderStatus, t: Translator, page: int = 0) -> Screen:
    _ = t.gettext
    header = [
        "<b>" + e(_("Order {number}").format(number=status.number)) + "</b>",
        e(
            _("Buyer: {name} ({email}), language: {language}").format(
                name=status.buyer_name, email=status.buyer_email, language=status.language
            )
        ),
        e(_("Times are in {timezone}.").format(timezone=status.timezone)),
    ]
    blocks = [ticket_block(ticket, status.timezone, t) for ticket in status.tickets]
    if blocks:
        title = _("Tickets ({count})").format(count=len(status.tickets))
        blocks[0] = f"<b>{e(title)}</b>\n{blocks[0]}"
    changes = [
        audit_text(line, status.timezone, t, with_ticket=True) for line in status.recent_changes
    ]
    if changes:
        heading = _("Recent changes")  # marked outside the f-string, or Babel misses it
        changes[0] = f"<b>{e(heading)}</b>\n{changes[0]}"
    # Changes are short lines; keeping them in one block keeps the section on one page.
    blocks.append("\n".join(changes) if changes else e(_("No changes recorded yet.")))
    return paged_screen(header, blocks, page, cb.STAFF_STATUS, status.id, t)


def history_screen(history: TicketHistory, t: Translator, page: int = 0) -> Screen:
    _ = t.gettext
    header = [
        "<b>"
        + e(
            _("History of ticket {ref}, order {number}").format(
                ref=history.ref, number=history.order_number
            )
        )
        + "</b>",
        e(_("Times are in {timezone}.").format(timezone=history.timezone)),
    ]
    if history.truncated:
        header.append(
            e(_("Only the last {count} entries are shown.").format(count=len(history.entries)))
        )
    blocks = [
        audit_text(line, history.timezone, t, with_ticket=False) for line in history.entries
    ] or [e(_("No changes recorded yet."))]
    return paged_screen(
        header, blocks, page, cb.STAFF_HISTORY, history.ticket_id, t, separator="\n"
    )


def found_screen(text: str, found: FoundOrders, t: Translator) -> Screen:
    _ = t.gettext
    text = text if len(text) <= 60 else text[:59] + "…"  # echoed, so keep it short
    if not found.orders:
        return Screen(e(_("No order matches “{text}”.").format(text=text)))
    count = len(found.orders)
    lines = [
        e(
            t.ngettext(
                "{count} order matches “{text}”:", "{count} orders match “{text}”:", count
            ).format(count=count, text=text)
        )
    ]
    rows = []
    for order in found.orders:
        tickets = t.ngettext("{count} ticket", "{count} tickets", order.ticket_count).format(
            count=order.ticket_count
        )
        lines.append(
            "• "
            + e(
                _("{number} — {name} ({email}), {tickets}").format(
                    number=order.number,
                    name=order.buyer_name,
                    email=order.buyer_email,
                    tickets=tickets,
                )
            )
        )
        rows.append([button(f"📋 {order.number}"[:60], cb.encode(cb.STAFF_STATUS, order.id, 0))])
    if found.more:
        lines += [
            "",
            e(
                _("Only the first {count} are shown; please search more precisely.").format(
                    count=count
                )
            ),
        ]
    return Screen("\n".join(lines), rows)


def resent_text(result: staff.ResentInvitations, t: Translator) -> str:
    lines = []
    if result.emails:
        sent = len(result.emails)
        lines.append(
            t.ngettext(
                "{count} invitation of order {number} sent again: {emails}",
                "{count} invitations of order {number} sent again: {emails}",
                sent,
            ).format(count=sent, number=result.order_number, emails=", ".join(result.emails))
        )
    if result.skipped:
        lines.append(
            t.ngettext(
                "{count} invitation not sent again: personalisation has closed for its event.",
                "{count} invitations not sent again: personalisation has closed for their events.",
                result.skipped,
            ).format(count=result.skipped)
        )
    return e("\n".join(lines))


# --- handlers --------------------------------------------------------------------------------


async def on_status(update: Update, context: Context) -> None:
    """``/status ORDER_NUMBER``: the whole order, paginated."""
    number = await command_argument(update, context, N_("Usage: /status ORDER_NUMBER"))
    if number is None:
        return
    status = await staff.order_status(store_of(context), update.effective_user.id, number)
    await show(update, status_screen(status, await user_translator(update, context)))


async def on_status_page(update: Update, context: Context, data: cb.Callback) -> str | None:
    require_staff(update, context)
    status = await staff.order_status_by_id(store_of(context), update.effective_user.id, data.id(0))
    await show(update, status_screen(status, await user_translator(update, context), data.id(1)))
    return None


async def on_find(update: Update, context: Context) -> None:
    """``/find TEXT``: orders by number, buyer, ticket reference or holder."""
    text = await command_argument(
        update,
        context,
        N_(
            "Usage: /find TEXT — part of an order number, a ticket reference, or a buyer's or "
            "holder's name or e-mail address."
        ),
    )
    if text is None:
        return
    found = await staff.find_orders(store_of(context), update.effective_user.id, text)
    await show(update, found_screen(text, found, await user_translator(update, context)))


async def on_history(update: Update, context: Context) -> None:
    """``/history TICKET_REF``: everything that happened to a ticket, paginated."""
    ref = await command_argument(update, context, N_("Usage: /history TICKET_REF"))
    if ref is None:
        return
    history = await staff.ticket_history(store_of(context), update.effective_user.id, ref=ref)
    await show(update, history_screen(history, await user_translator(update, context)))


async def on_history_page(update: Update, context: Context, data: cb.Callback) -> str | None:
    require_staff(update, context)
    history = await staff.ticket_history(
        store_of(context), update.effective_user.id, ticket_id=data.id(0)
    )
    await show(update, history_screen(history, await user_translator(update, context), data.id(1)))
    return None


async def on_resend(update: Update, context: Context) -> None:
    """``/resend ORDER_NUMBER``: the order's pending invitation e-mails, sent again."""
    number = await command_argument(update, context, N_("Usage: /resend ORDER_NUMBER"))
    if number is None:
        return
    result = await staff.resend_order_invitations(
        store_of(context), update.effective_user.id, number
    )
    wake_background(context)
    t = await user_translator(update, context)
    await say(update, resent_text(result, t))


COMMANDS = {"status": on_status, "find": on_find, "history": on_history, "resend": on_resend,
            "stats": event_reports.on_stats, "export": event_reports.on_export}
BUTTONS = {action: staff_button(handler) for action, handler in {
    cb.STAFF_STATUS: on_status_page, cb.STAFF_HISTORY: on_history_page,
    cb.STAFF_STATS_EVENT: event_reports.on_stats_button,
    cb.STAFF_EXPORT_EVENT: event_reports.on_export_button}.items()}


def register(application: Application) -> None:
    """Add the staff commands (before the catch-all for unknown commands)."""
    for name, handler in COMMANDS.items():
        application.add_handler(CommandHandler(name, staff_command(handler)))
