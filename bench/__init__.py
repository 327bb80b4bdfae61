"""The benchmark of issue #6: Ticketbot against a bare python-telegram-bot bot, through the local
Bot API emulator. Run it with ``python -m bench.run``; see bench/README.md."""
