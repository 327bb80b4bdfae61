"""The database plumbing: the engine and units of work, the SQLite driver, insert-or-update,
group commit, and the migrations (``migrations/``, run by Alembic with ``alembic.ini``)."""
