"""The callback-data codec: short prefixed strings such as ``t:42`` built and parsed here only.

Callback data says *what* a button is about, never that the user *may* act: every press reloads
the ticket and re-checks the user's right to it. Telegram caps callback data at 64 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conversations.presentation.actions import ACTIONS as _ACTION
from conversations.presentation.actions import DECLARED, Asks, TicketAction

MAX_CALLBACK_BYTES = 64
MAX_ID = 2**31 - 1  # the store's ids are 32-bit integers

HOME = "h"  # the orders and tickets of this account
OVERVIEW = "o"  # o:<order_id>:<page>
TICKET = "t"  # t:<ticket_id>, the ticket's menu
# A ticket action's buttons carry its declared code (presentation/actions.py): ``sl:<ticket_id>``
# starts it, ``sly:<ticket_id>`` confirms it, ``exs:<ticket_id>:<target index>`` chooses a target.
ASSIGN = _ACTION["assign"].code  # a:<ticket_id>, claim for myself or send to a friend
CLAIM_SELF = _ACTION["claim"].code  # me:<ticket_id>, asks to confirm the name
INVITE = _ACTION["invite"].code  # fr:<ticket_id>, asks for the friend's e-mail
RESEND = _ACTION["resend"].code
REVOKE = _ACTION["revoke"].code
SELL = _ACTION["sell"].code  # sl:<ticket_id>, asks for a price
CHANGE_PRICE = _ACTION["change_price"].code
CANCEL_SALE = _ACTION["cancel_sale"].code
EXCHANGE = _ACTION["exchange"].code  # ex:<ticket_id>, the sessions it can be exchanged for
RENAME = _ACTION["rename"].code
TAKE_BACK = _ACTION["take_back"].code


def confirm_code(action: TicketAction) -> str | None:
    """The prefix confirming ``action``; None for one that runs when pressed or only offers."""
    confirms = action.asks != Asks.CHOICE and (action.asks != Asks.NOTHING or action.question)
    return action.code + "y" if confirms else None


def choose_code(action: TicketAction) -> str | None:
    """The prefix choosing one of ``action``'s targets, for an action asking for one."""
    return action.code + "s" if action.asks == Asks.TARGET else None


CLAIM_SELF_CONFIRM = confirm_code(_ACTION["claim"])
INVITE_CONFIRM = confirm_code(_ACTION["invite"])
REVOKE_CONFIRM = confirm_code(_ACTION["revoke"])
SELL_CONFIRM = confirm_code(_ACTION["sell"])
CHANGE_PRICE_CONFIRM = confirm_code(_ACTION["change_price"])
CANCEL_SALE_CONFIRM = confirm_code(_ACTION["cancel_sale"])
EXCHANGE_CHOOSE = choose_code(_ACTION["exchange"])
EXCHANGE_CONFIRM = confirm_code(_ACTION["exchange"])
RENAME_CONFIRM = confirm_code(_ACTION["rename"])
TAKE_BACK_CONFIRM = confirm_code(_ACTION["take_back"])
MORE = "m"  # m:<order_id>, more actions
LANGUAGE = "lg"  # lg:<order_id>:<language index>
SUPPORT = "sp"  # sp:<order_id>
CLAIM = "cv"  # cv:<invitation_id>, the claim screen again
ACCEPT = "ca"  # ca:<invitation_id>
DECLINE = "cd"
DECLINE_CONFIRM = "cdy"
STAFF_STATUS = "ss"  # ss:<order_id>:<page>, an order's status for support staff
STAFF_HISTORY = "sh"  # sh:<ticket_id>:<page>, a ticket's audit history for support staff
# sst:<index> / sxe:<index>: /stats or /export of an event, by its place among the events
# (storage.reads.event_report.event_choices; event ids are text, callback ids numbers).
STAFF_STATS_EVENT = "sst"
STAFF_EXPORT_EVENT = "sxe"
TICKET_SHOW = "qr"  # qr:<ticket_id>, the holder's ticket (QR picture) again
TICKET_PDF = "pdf"  # pdf:<ticket_id>, the ticket as a PDF
TICKET_ICS = "ics"  # ics:<ticket_id>, the calendar entry
ORDER_PDF = "pdo"  # pdo:<order_id>, the PDF of my own tickets of an order
REMINDERS = "rmd"  # rmd:<order_id>:<1 on, 0 off>, reminders turned on or off
FORGET_CONFIRM = "fg"  # fg, /forgetme confirmed: forget whoever pressed it

TICKET_ACTION_CODES = frozenset(
    code for action in DECLARED
    for code in (action.code, confirm_code(action), choose_code(action)) if code)
ACTIONS = frozenset({
    HOME, OVERVIEW, TICKET, CLAIM, ACCEPT, DECLINE, DECLINE_CONFIRM, MORE, LANGUAGE, SUPPORT,
    STAFF_STATUS, STAFF_HISTORY, STAFF_STATS_EVENT, STAFF_EXPORT_EVENT, TICKET_SHOW,
    TICKET_PDF, TICKET_ICS, ORDER_PDF, REMINDERS, FORGET_CONFIRM,
    *TICKET_ACTION_CODES,
})
_PATTERN = re.compile(r"^([a-z]{1,4})((?::\d{1,12}){0,3})$")


@dataclass(frozen=True)
class Callback:
    action: str
    ids: tuple[int, ...]

    def id(self, index: int = 0) -> int:
        """The index-th number of the data; a button of the wrong shape reads as not found."""
        return self.ids[index] if index < len(self.ids) else -1


def encode(action: str, *ids: int) -> str:
    if action not in ACTIONS:
        raise ValueError(f"unknown callback action {action!r}")
    data = ":".join([action, *(str(int(i)) for i in ids)])
    if len(data.encode()) > MAX_CALLBACK_BYTES:
        raise ValueError("callback data longer than Telegram allows")
    return data


def decode(data: str | None) -> Callback | None:
    """The button's meaning, or None for data this bot never made."""
    match = _PATTERN.match(data or "")
    if not match or match.group(1) not in ACTIONS:
        return None
    ids = tuple(int(part) for part in match.group(2).split(":")[1:])
    if any(number > MAX_ID for number in ids):
        return None  # no row has such an id, and PostgreSQL would refuse to compare it
    return Callback(match.group(1), ids)


def pattern(*actions: str) -> re.Pattern[str]:
    """An anchored pattern matching the data of these actions, for CallbackQueryHandler."""
    names = "|".join(sorted(actions, key=len, reverse=True))
    return re.compile(rf"^(?:{names})(?::\d{{1,12}}){{0,3}}$")
