"""The callback-data codec: short prefixed strings such as ``t:42`` built and parsed here only.

Callback data says *what* a button is about, never that the user *may* act: every press reloads
the ticket and re-checks the user's right to it. Telegram caps callback data at 64 bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_CALLBACK_BYTES = 64
MAX_ID = 2**31 - 1  # the store's ids are 32-bit integers

HOME = "h"  # the orders and tickets of this account
OVERVIEW = "o"  # o:<order_id>:<page>
TICKET = "t"  # t:<ticket_id>, the ticket's menu
ASSIGN = "a"  # a:<ticket_id>, claim for myself or send to a friend
CLAIM_SELF = "me"  # me:<ticket_id>, asks to confirm the name
CLAIM_SELF_CONFIRM = "mey"
INVITE = "fr"  # fr:<ticket_id>, asks for the friend's e-mail
INVITE_CONFIRM = "fry"
RESEND = "rs"
REVOKE = "rv"
REVOKE_CONFIRM = "rvy"
SELL = "sl"  # sl:<ticket_id>, asks for a price
SELL_CONFIRM = "sly"
CHANGE_PRICE = "cp"
CHANGE_PRICE_CONFIRM = "cpy"
CANCEL_SALE = "cs"
CANCEL_SALE_CONFIRM = "csy"
EXCHANGE = "ex"  # ex:<ticket_id>, the sessions it can be exchanged for
EXCHANGE_CHOOSE = "exs"  # exs:<ticket_id>:<target index>
EXCHANGE_CONFIRM = "exy"
RENAME = "nm"
RENAME_CONFIRM = "nmy"
TAKE_BACK = "tb"
TAKE_BACK_CONFIRM = "tby"
MORE = "m"  # m:<order_id>, more actions
LANGUAGE = "lg"  # lg:<order_id>:<language index>
SUPPORT = "sp"  # sp:<order_id>
CLAIM = "cv"  # cv:<invitation_id>, the claim screen again
ACCEPT = "ca"  # ca:<invitation_id>
DECLINE = "cd"
DECLINE_CONFIRM = "cdy"
STAFF_STATUS = "ss"  # ss:<order_id>:<page>, an order's status for support staff
STAFF_HISTORY = "sh"  # sh:<ticket_id>:<page>, a ticket's audit history for support staff
TICKET_SHOW = "qr"  # qr:<ticket_id>, the holder's ticket (QR picture) again
TICKET_PDF = "pdf"  # pdf:<ticket_id>, the ticket as a PDF
TICKET_ICS = "ics"  # ics:<ticket_id>, the calendar entry
ORDER_PDF = "pdo"  # pdo:<order_id>, the PDF of my own tickets of an order
REMINDERS = "rmd"  # rmd:<order_id>:<1 on, 0 off>, reminders turned on or off

ACTIONS = frozenset({
    HOME, OVERVIEW, TICKET, ASSIGN, CLAIM_SELF, CLAIM_SELF_CONFIRM, INVITE, INVITE_CONFIRM,
    RESEND, REVOKE, REVOKE_CONFIRM, CLAIM, ACCEPT, DECLINE, DECLINE_CONFIRM, SELL,
    SELL_CONFIRM, CHANGE_PRICE, CHANGE_PRICE_CONFIRM, CANCEL_SALE, CANCEL_SALE_CONFIRM,
    EXCHANGE, EXCHANGE_CHOOSE, EXCHANGE_CONFIRM, RENAME, RENAME_CONFIRM, TAKE_BACK,
    TAKE_BACK_CONFIRM, MORE, LANGUAGE, SUPPORT, STAFF_STATUS, STAFF_HISTORY,
    TICKET_SHOW, TICKET_PDF, TICKET_ICS, ORDER_PDF, REMINDERS,
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
