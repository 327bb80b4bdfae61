"""The order store's tables, as typed SQLAlchemy 2 models, one module per concept:

- ``base.py``: the declarative base (its naming convention) and the column types tables share;
- ``orders.py``: events, orders, tickets and every barcode issued;
- ``access.py``: deep links, who may manage an order, invitations of a ticket to a friend;
- ``resale.py``: the resale market's listings;
- ``gate.py``: scans at the gate and each event's barcode feed;
- ``tickets.py``: the ticket in hand (barcode changes to deliver, messages sent, Telegram files);
- ``reminders.py``: which reminder went out, and who wants none;
- ``chats.py``: Telegram users, chat states, the update inbox, Mini App actions, chat news;
- ``mails.py``: the outbox of e-mails;
- ``webhooks.py``: the outbox of webhook messages, their deliveries, stopped endpoints;
- ``journal.py``: the audit history and the store's own settings.

Every rule that must hold under concurrency is also a constraint: one holder name and one
e-mail address per event (on normalised keys), one current barcode per ticket, barcodes never
reused, one state per ticket. Relationships are ``lazy="raise"`` so hidden I/O fails loudly.

This package is where callers take the tables from (``from storage.models import Ticket``), and
importing it puts every table in ``Base.metadata`` (``create_all``, Alembic, the migration
test). The modules themselves import only ``base.py`` and each other, never this package.
"""

from storage.models.access import (
    ClaimGrant,
    Invitation,
    InvitationState,
    LinkKind,
    LinkToken,
    OrderAccess,
)
from storage.models.base import (
    NAMING_CONVENTION,
    Base,
    Money,
    UtcDateTime,
    Words,
    WordsValue,
    sql_constant,
)
from storage.models.chats import (
    BroadcastBudget,
    ChatNotification,
    ChatState,
    TelegramUser,
    UpdateInbox,
    WebAppAction,
)
from storage.models.gate import (
    BarcodeFeedEntry,
    BarcodeFeedHead,
    EntryKey,
    GateScan,
    ScanResult,
)
from storage.models.journal import ActorKind, AuditEntry, Setting
from storage.models.mails import OutboxMail
from storage.models.orders import (
    DEFAULT_PERIOD_SECONDS,
    GONE_STATES,
    Barcode,
    EntryCode,
    Event,
    Order,
    Ticket,
    TicketState,
    not_gone,
)
from storage.models.reminders import ReminderOptOut, SentReminder
from storage.models.resale import ListingState, ResaleListing
from storage.models.tickets import TelegramFile, TicketChange, TicketMessage
from storage.models.webhooks import (
    DeliveryState,
    StoppedWebhookEndpoint,
    WebhookDelivery,
    WebhookMessage,
)

__all__ = [
    "DEFAULT_PERIOD_SECONDS",
    "GONE_STATES",
    "NAMING_CONVENTION",
    "ActorKind",
    "AuditEntry",
    "Barcode",
    "BarcodeFeedEntry",
    "BarcodeFeedHead",
    "Base",
    "BroadcastBudget",
    "ChatNotification",
    "ChatState",
    "ClaimGrant",
    "DeliveryState",
    "EntryCode",
    "EntryKey",
    "Event",
    "GateScan",
    "Invitation",
    "InvitationState",
    "LinkKind",
    "LinkToken",
    "ListingState",
    "Money",
    "Order",
    "OrderAccess",
    "OutboxMail",
    "ReminderOptOut",
    "ResaleListing",
    "ScanResult",
    "SentReminder",
    "Setting",
    "StoppedWebhookEndpoint",
    "TelegramFile",
    "TelegramUser",
    "Ticket",
    "TicketChange",
    "TicketMessage",
    "TicketState",
    "UpdateInbox",
    "UtcDateTime",
    "WebAppAction",
    "WebhookDelivery",
    "WebhookMessage",
    "Words",
    "WordsValue",
    "not_gone",
    "sql_constant",
]
