"""A started bot holds only what serving screens needs (issue 24): the libraries that draw a
chart, a ticket's files or migrate the schema are imported when first used, not at start.

``ticketbot run`` (``bot.cli.run_bot``, HTTP server and polling included) runs in a process of
its own against the Bot API emulator of the test process, on a SQLite store already at the
newest revision; once it polls, it reports the modules it imported and how it left its heap to
the garbage collector. docs/performance.md says what each of these costs.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from bot.tools.emulator import BotApiEmulator
from storage.db.store import open_store

ROOT = Path(__file__).resolve().parent.parent
BOT_USERNAME = "ticketbot_startup_bot"

# Loaded on the first /stats chart, ticket picture, PDF or .ics, or migration; never at start.
NOT_AT_START = ("matplotlib", "numpy", "reportlab", "PIL", "zxingcpp", "icalendar", "alembic",
                "mako", "confusable_homoglyphs.confusables")

# Runs ``ticketbot run`` as the command does, and prints the modules once the bot polls; then
# stops it as a service manager would. A name key is made last: folding look-alike letters
# must not bring the package's whole parsed data either.
STARTED_BOT = """
import asyncio, gc, json, logging, os, signal, sys

from bot.cli import run_bot
from bot.settings import Settings


class Polling(logging.Handler):
    def __init__(self, started):
        super().__init__()
        self.started = started

    def emit(self, record):
        if record.getMessage() == "polling Telegram for updates":
            self.started.set()


async def main():
    started = asyncio.Event()
    logging.basicConfig(level=logging.INFO)
    logging.getLogger("bot.http.server").addHandler(Polling(started))
    bot = asyncio.create_task(run_bot(Settings(_env_file=None), None))
    await asyncio.wait([bot, asyncio.create_task(started.wait())], timeout=60,
                       return_when=asyncio.FIRST_COMPLETED)
    at_start = sorted(sys.modules)
    heap = {"frozen": gc.get_freeze_count()}
    from storage.keys import name_key
    name_key("\\u0410lex Durand")
    after_name_key = sorted(sys.modules)
    os.kill(os.getpid(), signal.SIGTERM)
    code = await bot
    print(json.dumps({"started": started.is_set(), "code": code, "at_start": at_start,
                      "after_name_key": after_name_key, "heap": heap}))


asyncio.run(main())
"""


def loaded(modules: list[str], names: tuple[str, ...]) -> list[str]:
    """Which of ``names`` (packages, or modules of one) are among ``modules``."""
    return [name for name in names
            if any(module == name or module.startswith(name + ".") for module in modules)]


async def started_bot_modules(tmp_path: Path) -> dict:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'started.db'}"
    store = await open_store(database_url, secret="test-secret")  # migrated: current at start
    await store.close()
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    environment = {
        **{key: value for key, value in os.environ.items()
           if not key.startswith("TICKETBOT_")},
        "TICKETBOT_TOKEN": emulator.token, "TICKETBOT_TELEGRAM_API_URL": emulator.base_url,
        "TICKETBOT_BOT_USERNAME": BOT_USERNAME, "TICKETBOT_DATABASE_URL": database_url,
        "TICKETBOT_SECRET": "test-secret", "TICKETBOT_OUTBOX_DIR": str(tmp_path / "outbox"),
        "TICKETBOT_HTTP_PORT": "0",
    }
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", STARTED_BOT, cwd=ROOT, env=environment,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        output, errors = await asyncio.wait_for(process.communicate(), timeout=120)
    finally:
        await emulator.stop()
    assert process.returncode == 0, errors.decode()[-3000:]
    report = json.loads(output.decode().strip().splitlines()[-1])
    assert report["started"] and report["code"] == 0, errors.decode()[-3000:]
    return report


async def test_a_started_bot_has_not_imported_what_only_some_commands_need(tmp_path):
    report = await started_bot_modules(tmp_path)
    # The bot did start its own parts: the check looks at a bot that serves.
    assert loaded(report["at_start"], ("telegram.ext", "aiohttp.web", "bot.http.server",
                                       "conversations.event_reports",
                                       "conversations.presentation.ticket_files")) == [
        "telegram.ext", "aiohttp.web", "bot.http.server", "conversations.event_reports",
        "conversations.presentation.ticket_files"]
    assert loaded(report["at_start"], NOT_AT_START) == []
    assert loaded(report["after_name_key"], NOT_AT_START) == []
    # Once it serves, it settles its heap (bot/process_memory.py): the collector no longer
    # walks the libraries and the application at every full collection.
    assert report["heap"]["frozen"] > 50_000

