"""A bot process for the tests that kill it: the real application of
``bot.application.build_application`` with its services, long-polling the Bot API emulator that
runs in the test process (so that the emulator outlives the bot), on the test's store.

Run as ``python -m tests.bot_process``; configured by ``BOT_PROCESS_*`` environment variables
(see ``main``). Prints ``ready`` once it polls. Logs go to stderr, at INFO.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal

from bot import inbox
from bot.application import build_application, start_services, stop_services
from bot.settings import Settings
from storage.db.store import Store


def settings_from_environment() -> tuple[Settings, dict]:
    env = os.environ
    settings = Settings(
        _env_file=None, token=env["BOT_PROCESS_TOKEN"],
        telegram_api_url=env["BOT_PROCESS_API_URL"], bot_username=env["BOT_PROCESS_USERNAME"],
        database_url=env["BOT_PROCESS_DATABASE_URL"], secret=env["BOT_PROCESS_SECRET"],
        outbox_dir=env["BOT_PROCESS_OUTBOX"], smtp_url=env.get("BOT_PROCESS_SMTP_URL") or None,
    )
    engine_kwargs = {}
    if env.get("BOT_PROCESS_SCHEMA"):
        engine_kwargs["connect_args"] = {
            "server_settings": {"search_path": env["BOT_PROCESS_SCHEMA"]}}
    return settings, engine_kwargs


async def run() -> None:
    settings, engine_kwargs = settings_from_environment()
    # Short leases, so that a restarted bot takes over the dead one's updates within the test.
    inbox.LEASE = dt.timedelta(seconds=float(os.environ.get("BOT_PROCESS_LEASE", "1.5")))
    inbox.GRACE = dt.timedelta(seconds=0.5)
    inbox.SWEEP_INTERVAL = 0.2
    store = Store(settings.database_url, secret=settings.secret, **engine_kwargs)
    application = build_application(settings, store)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        async with application:
            await start_services(application)
            await application.start()
            await application.updater.start_polling(poll_interval=0, timeout=1)
            print("ready", flush=True)
            await stop.wait()
            await application.updater.stop()
            await application.stop()
            await stop_services(application)
    finally:
        await store.close()


def main() -> None:
    logging.basicConfig(level=logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(run())


if __name__ == "__main__":
    main()
