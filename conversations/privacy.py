"""The person's own data, in the chat: ``/privacy`` says what is kept, why, for how long and
whom to ask; ``/mydata`` sends everything the store holds about them as a JSON file;
``/forgetme`` says what forgetting does and asks, and its button forgets whoever pressed it.

No chat state between the steps: the confirmation is one button, and its press names no one —
it acts on the presser's own account, so there is no right to re-check but being that account.
The rules (what is erased, what the shop keeps, what becomes of their tickets) live in
``storage/services/privacy.py``; docs/privacy.md says them in prose.
"""

from __future__ import annotations

import json

from telegram import InputFile, Update

from conversations import callbacks as cb
from conversations.common import (
    Context,
    Screen,
    button,
    e,
    say,
    show,
    store_of,
    user_translator,
)
from locales import Translator
from storage.inbox import KEEP_DONE
from storage.models.orders import DEFAULT_RETENTION_DAYS
from storage.services import privacy


def privacy_text(t: Translator, contact: str | None) -> str:
    """What ``/privacy`` says, as Telegram HTML."""
    _ = t.gettext
    kept = _(
        "<b>Your data with this bot</b>\n\n"
        "<b>What we keep:</b> the name and e-mail address of the buyer of each order, the name "
        "and e-mail on each ticket, the e-mail addresses tickets were sent to, your Telegram id "
        "and the language you chose, what you typed while assigning a ticket, and a history "
        "of what was done with each ticket.\n\n"
        "<b>Why:</b> to put each ticket in its holder's name, to let the right people in at the "
        "gate, and to answer questions about an order.")
    how_long = t.ngettext(
        "<b>How long:</b> the names and e-mail addresses of an event's orders and tickets are "
        "erased {days} day after the event (unless the shop set another period); messages "
        "you sent the bot are deleted after {inbox} days, e-mails and notifications a week "
        "after they were sent.",
        "<b>How long:</b> the names and e-mail addresses of an event's orders and tickets are "
        "erased {days} days after the event (unless the shop set another period); messages "
        "you sent the bot are deleted after {inbox} days, e-mails and notifications a week "
        "after they were sent.",
        DEFAULT_RETENTION_DAYS).format(days=DEFAULT_RETENTION_DAYS, inbox=KEEP_DONE.days)
    yours = _("<b>Your rights:</b> /mydata sends you a copy of everything we keep about you; "
              "/forgetme erases it.")
    if contact:
        ask = _("<b>Questions:</b> {contact}").format(contact=e(contact))
    else:
        ask = _("<b>Questions:</b> reply to your order confirmation e-mail.")
    return "\n\n".join((kept, how_long, yours, ask))


async def on_privacy(update: Update, context: Context) -> None:
    """``/privacy``."""
    t = await user_translator(update, context)
    contact = context.application.bot_data["settings"].support_contact
    await say(update, privacy_text(t, contact))


async def on_my_data(update: Update, context: Context) -> None:
    """``/mydata``: the store's document about this user, sent as a file."""
    t = await user_translator(update, context)
    store = store_of(context)
    with store.long_statements():  # everything about a person: not a reply's few rows
        document = await privacy.my_data(store, update.effective_user.id)
    data = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode()
    await update.effective_chat.send_document(
        InputFile(data, filename="my-data.json"),
        caption=e(t.gettext("Everything this bot keeps about you.")), parse_mode="HTML")


def forget_screen(t: Translator) -> Screen:
    """The confirmation ``/forgetme`` asks for, saying what will happen."""
    _ = t.gettext
    text = _(
        "<b>Forget me?</b>\n\n"
        "Your name, your e-mail addresses and your Telegram id will be erased from your "
        "orders, your tickets, the invitations you sent or received and their history, and "
        "your messages to this bot will be deleted. This cannot be undone.\n\n"
        "What the shop must keep stays: order numbers, prices, and that each ticket existed.\n\n"
        "A ticket in your name for an event still to come goes back to its buyer, to be "
        "assigned again; a ticket of an event already over keeps its place, without your name. "
        "You will no longer see your orders here unless you open their link again.")
    rows = [[button(_("Yes, forget me"), cb.encode(cb.FORGET_CONFIRM))],
            [button(_("No, keep my data"), cb.encode(cb.HOME))]]
    return Screen(text, rows)


async def on_forget_me(update: Update, context: Context) -> None:
    """``/forgetme``: the confirmation screen."""
    await show(update, forget_screen(await user_translator(update, context)))


async def on_forget_confirm(update: Update, context: Context, data: cb.Callback) -> str | None:
    """The confirmation pressed: forget the presser, then say it is done (in the language
    they had, read before it was erased)."""
    t = await user_translator(update, context)
    store = store_of(context)
    with store.long_statements():  # every row about a person, and the WAL emptied after
        erasure = await privacy.forget_person(store, update.effective_user.id)
    await store.truncate_wal()
    _ = t.gettext
    text = t.ngettext(
        "Done: this bot no longer knows you. {returned} ticket went back to its buyer.",
        "Done: this bot no longer knows you. {returned} tickets went back to their buyer.",
        erasure.tickets_returned).format(returned=erasure.tickets_returned)
    if not erasure.tickets_returned:
        text = _("Done: this bot no longer knows you.")
    await show(update, Screen(e(text)))
    return None
