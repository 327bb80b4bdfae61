"""What a started, idle bot holds (issue 24): the resident memory each group of libraries adds
as ``ticketbot run`` imports them, and the RSS of ``ticketbot run`` itself once it polls.

    .venv/bin/python -m bench.startup_memory [--idle-seconds 5]

Run it with the interpreter of a production install (``pip install -e .``, no test extras):
the test venv also has rich, click and pygments, which httpx's command-line module imports
when they are present, 5 MiB a production install does not have. The table of
docs/performance.md comes from here.

1. **Import steps**: a fresh interpreter imports each step after the ones before it and reads
   its own ``VmRSS`` after each; a step's cost is what it adds to those before it.
2. **Started, idle**: ``python -m bot.cli run`` against the Bot API emulator, on a SQLite store
   migrated beforehand (as a restarted bot finds it), with the HTTP server; once it polls and
   has sat idle ``--idle-seconds``, its ``VmRSS`` and ``VmHWM``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.process import REPO, memory_kib

# Each step, and why a started bot imports it. The first four are the framework's floor.
IMPORT_STEPS = (
    ("telegram.ext", "python-telegram-bot (with httpx, cryptography)"),
    ("aiohttp", "aiohttp: our HTTP server and the Bot API transport"),
    ("sqlalchemy.ext.asyncio", "SQLAlchemy's asyncio ORM"),
    ("aiosqlite", "the SQLite driver"),
    ("pydantic_settings", "pydantic and pydantic-settings: the settings, API bodies"),
    ("locales", "Babel and the catalogs"),
    ("storage.models", "the tables, the store, names and e-mails as keys"),
    ("storage.services", "the use cases (and the webhook messages' models)"),
    ("bot.application", "the application: handlers, inbox, mailer, worker, metrics"),
    ("bot.http.app", "the HTTP API: its bodies as pydantic models, the importer's entries"),
    ("bot.cli", "the Mini App's routes, the server, the command"),
)

_MEASURE_STEPS = """
import importlib, json, sys

def rss():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])

sizes = [("interpreter", rss())]
for step in sys.argv[1:]:
    importlib.import_module(step)
    sizes.append((step, rss()))
print(json.dumps(sizes))
"""


def import_steps(python: str) -> list[tuple[str, int]]:
    """(step, VmRSS in KiB after it) for a fresh interpreter importing the steps in order."""
    output = subprocess.run(
        [python, "-c", _MEASURE_STEPS, *(step for step, _why in IMPORT_STEPS)],
        cwd=REPO, check=True, capture_output=True, text=True).stdout
    return [tuple(pair) for pair in json.loads(output)]


async def started_idle_bot(python: str, idle_seconds: float) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) of ``ticketbot run`` once it polls and has idled a while."""
    from bench.mail_speed import free_port
    from bot.tools.emulator import BotApiEmulator
    from storage.db.store import open_store

    with tempfile.TemporaryDirectory(prefix="ticketbot-startup-") as folder:
        database_url = f"sqlite+aiosqlite:///{Path(folder) / 'bot.db'}"
        store = await open_store(database_url, secret="bench-secret")  # a current schema
        await store.close()
        emulator = BotApiEmulator(bot_username="ticketbot_bench_bot")
        await emulator.start()
        environment = {
            **{key: value for key, value in os.environ.items()
               if not key.startswith("TICKETBOT_")},
            "TICKETBOT_TOKEN": emulator.token, "TICKETBOT_TELEGRAM_API_URL": emulator.base_url,
            "TICKETBOT_BOT_USERNAME": "ticketbot_bench_bot",
            "TICKETBOT_DATABASE_URL": database_url, "TICKETBOT_SECRET": "bench-secret",
            "TICKETBOT_OUTBOX_DIR": str(Path(folder) / "outbox"),
            "TICKETBOT_HTTP_PORT": str(free_port()),
        }
        bot = await asyncio.create_subprocess_exec(
            python, "-m", "bot.cli", "run", cwd=folder, env=environment,
            stderr=asyncio.subprocess.PIPE)
        try:
            assert bot.stderr is not None
            async with asyncio.timeout(120):
                async for line in bot.stderr:
                    if b"polling Telegram for updates" in line:
                        break
                else:
                    raise RuntimeError("ticketbot run exited before it polled")
            await asyncio.sleep(idle_seconds)
            return memory_kib(bot.pid)
        finally:
            if bot.returncode is None:
                bot.terminate()
                await bot.wait()
            await emulator.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-seconds", type=float, default=5.0)
    args = parser.parse_args()
    python = sys.executable
    steps = import_steps(python)
    print(f"{'import (cumulative)':28} {'RSS MiB':>8} {'adds':>6}  why a started bot has it")
    why = dict(IMPORT_STEPS)
    previous = None
    for step, kib in steps:
        adds = f"{(kib - previous) / 1024:+6.1f}" if previous is not None else ""
        print(f"{step:28} {kib / 1024:8.1f} {adds:>6}  {why.get(step, 'the bare interpreter')}")
        previous = kib
    memory = asyncio.run(started_idle_bot(python, args.idle_seconds))
    print(f"ticketbot run, started and idle {args.idle_seconds:g} s: "
          f"VmRSS {memory['VmRSS'] / 1024:.1f} MiB, VmHWM {memory['VmHWM'] / 1024:.1f} MiB")


if __name__ == "__main__":
    main()
