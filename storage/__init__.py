"""The order store: its tables, its rules and what reads them. It knows nothing of Telegram's
wiring, of chats' words or of processes; ``conversations/`` and ``bot/`` call it, never the
other way round.

Floor plan:

- ``db/``: the plumbing. ``store.py`` (the engine and units of work), the SQLite driver,
  insert-or-update, group commit, and the Alembic migrations;
- ``models/``: the tables, one module per concept over one declarative base;
- ``reads/``: what the faces show, read without changing anything (views of orders and
  tickets, the screens, reports, search, staff's views, availability, health);
- ``services/``: the use cases, one transaction each (assigning, claims, links, resale,
  exchange, gate, reminders, staff, the Mini App's actions, the import of order documents);
- at the top, the store's own mechanisms and building blocks: ``errors.py`` (the one error
  type), ``keys.py`` and ``skeleton.py`` (names and e-mails as keys), ``tokens.py`` (deep-link
  tokens), ``inbox.py`` and ``applying.py`` (each update applied once), ``chat_state.py``
  (where a chat stands), ``broadcast_budget.py`` (the pace of the bot's own messages),
  ``barcode_feed.py`` (what gate scanners follow) and ``ticket_delivery.py`` (the ticket in
  hand).
"""
