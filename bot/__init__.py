"""The Telegram side of Ticketbot: the application, its HTTP API, background work, the emulator."""

import os

# python-telegram-bot 22 gives durations (a flood-control answer's retry_after) in seconds,
# warning on every one that the next major version gives timedeltas; opting in now silences
# that. Our code reads them through bot.telegram_retry.flood_wait, which takes either.
os.environ.setdefault("PTB_TIMEDELTA", "1")
