"""The use cases of buyers and friends: one function each, one transaction each.

Every function takes the store and plain values, checks the caller's right to act inside the
same transaction, changes ticket state only with conditional updates (``WHERE state = … AND
version = …``) and lets the unique constraints reject the loser of a race. Mails and chat news
are written to outbox tables in that same transaction and sent after it commits. Every refusal
is a :class:`~storage.errors.Refusal`, the one error type of the store.

This package is the one import for callers (``from storage import services`` then
``services.claim_for_myself(…)``, or ``from storage.services import audit, …``); it re-exports
every public name of its modules, split by flow the way ``conversations/`` is:

- ``users.py``: Telegram users (remembered on /start, read back, cool-down after wrong links);
- ``links.py``: buyer links of an order, and opening a ``/start`` parameter (grant or claim view);
- ``storage/reads/screens.py`` (a read, here for the flows' one import): what the overview and
  ticket screens read;
- ``assigning.py``: claim for myself, invite a friend, resend, revoke (the buyer's side);
- ``friend_claims.py``: accept, decline (the friend's side), and expiry of invitations;
- ``holder_changes.py``: rename the holder of a completed ticket, take it back;
- ``language.py``: the language a user chose, and the one an invitation is written in;
- building blocks the flows share (and ``resale.py``, ``exchange.py``, ``staff.py``,
  ``gate.py`` and the importer use): ``ticket_changes.py`` (the managed ticket and its
  conditional change), ``invitations.py`` (an invitation's pending/final states and e-mail),
  ``barcodes.py`` (new, void, reissue) and ``journal.py`` (audit entries and chat news).

A package rather than flow modules beside a thin ``services.py``: the flows are a family (they
share the building blocks and the statements built once), and a folder keeps them together in
``storage/`` among the store's other concerns. The statements each flow runs most are built once
at import, in the module of the function that runs them.
"""

from storage.db.store import utcnow
from storage.errors import Refusal
from storage.reads.screens import home, order_overview, ticket_details
from storage.services.assigning import (
    claim_for_myself,
    invite_friend,
    resend_invitation,
    revoke_invitation,
)
from storage.services.barcodes import new_barcode, reissue_barcode, void_barcode
from storage.services.friend_claims import (
    accept_invitation,
    decline_invitation,
    expire_invitations,
)
from storage.services.holder_changes import rename_holder, take_back
from storage.services.invitations import renew_invitation
from storage.services.journal import audit, notify_order_managers
from storage.services.language import choose_language
from storage.services.links import (
    claim_view,
    create_order_link,
    create_order_links,
    open_link,
    revoke_order_links,
)
from storage.services.ticket_changes import change_ticket, managed_ticket
from storage.services.users import MAX_FAILED_STARTS, START_COOLDOWN, load_user, record_user

__all__ = [
    "MAX_FAILED_STARTS",
    "START_COOLDOWN",
    "Refusal",
    "accept_invitation",
    "audit",
    "change_ticket",
    "choose_language",
    "claim_for_myself",
    "claim_view",
    "create_order_link",
    "create_order_links",
    "decline_invitation",
    "expire_invitations",
    "home",
    "invite_friend",
    "load_user",
    "managed_ticket",
    "new_barcode",
    "notify_order_managers",
    "open_link",
    "order_overview",
    "record_user",
    "reissue_barcode",
    "rename_holder",
    "renew_invitation",
    "resend_invitation",
    "revoke_invitation",
    "revoke_order_links",
    "take_back",
    "ticket_details",
    "utcnow",
    "void_barcode",
]
