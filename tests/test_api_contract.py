"""The API contract checked from outside: Schemathesis, the OpenAPI fuzzer, runs with every check
against a real ``ticketbot run`` process that serves the sample orders, and finds nothing.

The bot process long-polls the Bot API emulator of this test process, on its own SQLite file
(the store is not under test here; its behaviour on PostgreSQL is). Before the server starts,
``ticketbot import`` loads ``storage/sample_orders.json`` and a buyer lists some tickets for
resale, so that ``tests/schemathesis_hooks.py`` can send part of the valid requests to real
orders and listings. ``TICKETBOT_FUZZ_SEED`` changes Schemathesis's seed (fixed by default, so
that CI is repeatable); ``TICKETBOT_FUZZ_EXAMPLES`` its examples per operation.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from bot.tools.emulator import BotApiEmulator
from storage import services
from storage.db.store import Store
from storage.models import Ticket
from storage.services import resale
from tests.conftest import ON_POSTGRES
from tests.harness import BOT_USERNAME, free_port

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "storage" / "sample_orders.json"
API_TOKEN = "contract-api-token"
GATE_TOKEN = "contract-gate-token"
SECRET = "contract-secret"
BUYER = 4242
ORDERS = ("DF-100234", "DF-100235", "DF-100236", "DF-100237")
EVENTS = ("dreamfest-2027-sat", "dreamfest-2027-sun", "harbour-lights-2027")
LISTED = tuple(f"T-100237-{n}" for n in range(1, 9))
FUZZ_SEED = os.environ.get("TICKETBOT_FUZZ_SEED", "20271717")
FUZZ_EXAMPLES = os.environ.get("TICKETBOT_FUZZ_EXAMPLES", "40")


def environment(emulator: BotApiEmulator, tmp_path: Path, port: int) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TICKETBOT_")}
    return {
        **inherited,
        "TICKETBOT_TOKEN": emulator.token,
        "TICKETBOT_TELEGRAM_API_URL": emulator.base_url,
        "TICKETBOT_BOT_USERNAME": BOT_USERNAME,
        "TICKETBOT_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'ticketbot.db'}",
        "TICKETBOT_SECRET": SECRET,
        "TICKETBOT_API_TOKEN": API_TOKEN,
        "TICKETBOT_GATE_TOKEN": GATE_TOKEN,
        "TICKETBOT_HTTP_HOST": "127.0.0.1",
        "TICKETBOT_HTTP_PORT": str(port),
        "TICKETBOT_OUTBOX_DIR": str(tmp_path / "outbox"),
        # The sample's rotating event shows its codes in the Mini App: run needs its address.
        "TICKETBOT_WEBAPP_URL": "https://tickets.example.org",
    }


async def ticketbot(env: dict[str, str], *args: str, **kwargs) -> asyncio.subprocess.Process:
    # cwd: a directory without a .env file, so only the environment above configures the bot.
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", *args, env=env, cwd=env["CONTRACT_CWD"], **kwargs
    )


async def list_tickets(database_url: str, webhook_url: str) -> list[int]:
    """The buyer of the sample's largest order lists some of its tickets for resale (each
    listing queues a webhook delivery to ``webhook_url``)."""
    store = Store(database_url, secret=SECRET)
    store.webhook_endpoints = (webhook_url,)
    try:
        token = await services.create_order_link(store, ORDERS[-1])
        await services.open_link(store, BUYER, token)
        async with store.read() as session:
            ids = (await session.scalars(select(Ticket.id).where(Ticket.ref.in_(LISTED)))).all()
        return [await resale.list_for_resale(store, BUYER, i, Decimal("60.00")) for i in ids]
    finally:
        await store.close()


async def gone_receiver(port: int) -> web.AppRunner:
    """A shop endpoint that answers every webhook 410 Gone: its deliveries end up stopped,
    so that the operators' retry route has real deliveries to retry (200), not only 409s."""
    async def gone(request: web.Request) -> web.Response:
        return web.Response(status=410)

    app = web.Application()
    app.router.add_post("/hooks", gone)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


def text_of(path: Path) -> str:
    return path.read_text()


async def wait_until_healthy(base: str, server: asyncio.subprocess.Process, log: Path) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            assert server.returncode is None, "ticketbot run stopped:\n" + text_of(log)
            try:
                async with session.get(base + "/healthz") as answer:
                    if answer.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("ticketbot run did not become healthy:\n" + text_of(log))


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        try:
            async with asyncio.timeout(15):
                await process.wait()
        except TimeoutError:
            process.kill()
            await process.wait()


@pytest.mark.skipif(ON_POSTGRES, reason="the server's store is SQLite either way: CI runs it once")
async def test_schemathesis_finds_no_failure_against_the_running_server(tmp_path):
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    emulator.user(BUYER)  # so that the news of each sale reaches a chat
    port = free_port()
    hooks = f"http://127.0.0.1:{free_port()}/hooks"
    receiver = await gone_receiver(int(hooks.split(":")[2].split("/")[0]))
    env = {**environment(emulator, tmp_path, port), "CONTRACT_CWD": str(tmp_path),
           "TICKETBOT_SHOP_WEBHOOK_URL": hooks,
           "TICKETBOT_SHOP_WEBHOOK_SECRET": "whsec_" + "A" * 44}
    log = tmp_path / "ticketbot.log"
    server = None
    try:
        imported = await ticketbot(env, "import", str(SAMPLE), stderr=asyncio.subprocess.PIPE)
        _, errors = await imported.communicate()
        assert imported.returncode == 0, errors.decode()
        listings = await list_tickets(env["TICKETBOT_DATABASE_URL"], hooks)
        with log.open("wb") as output:
            server = await ticketbot(env, "run", stdout=output, stderr=output)
        base = f"http://127.0.0.1:{port}"
        await wait_until_healthy(base, server, log)
        # Each route with the tokens its security scheme names: the shop's or a scanner's.
        config = tmp_path / "schemathesis.toml"
        config.write_text(
            f'[auth.openapi.bearer]\nbearer = "{API_TOKEN}"\n\n'
            f'[auth.openapi.gate]\nbearer = "{GATE_TOKEN}"\n'
        )
        fuzzer = await asyncio.create_subprocess_exec(
            str(Path(sys.executable).parent / "st"), "--config-file", str(config),
            "run", f"{base}/api/openapi.json",
            "--checks", "all",
            "--max-examples", FUZZ_EXAMPLES,
            "--seed", FUZZ_SEED,
            "--workers", "1",
            "--no-color",
            "--generation-database", "none",
            "--report", "har",
            "--report-har-path", str(tmp_path / "requests.har"),
            cwd=tmp_path,
            env={
                **env,
                "SCHEMATHESIS_HOOKS": "tests.schemathesis_hooks",
                "CONTRACT_ORDER_NUMBERS": ",".join(ORDERS),
                "CONTRACT_LISTINGS": ",".join(map(str, listings)),
                # One delivery per listing, numbered from 1.
                "CONTRACT_DELIVERIES": ",".join(str(n) for n in range(1, len(listings) + 1)),
                "CONTRACT_EVENTS": ",".join(EVENTS),
                "PYTHONPATH": str(ROOT),
            },
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        # The emulator answers the bot from this event loop: wait without blocking it.
        report, _ = await fuzzer.communicate()
        text = report.decode()
        print(text)
        assert fuzzer.returncode == 0, text
        # A warning means part of the schema went unused (a pattern it could not read, an
        # operation it could not reach): the run would prove less than it says.
        assert "WARNINGS" not in text, text
    finally:
        if server is not None:
            await stop(server)
        await emulator.stop()
        await receiver.cleanup()
    served = log.read_text()
    assert "Traceback" not in served, served
    # The fuzzer reached real orders and completed real sales, not only 404s.
    answered = answers(tmp_path / "requests.har")
    print(sorted(answered.items()))
    assert answered[("GET", "/api/orders/{number}", 200)] >= 10, answered
    assert answered[("POST", "/api/resale/{listing}/sold", 200)] >= 1, answered
    assert answered[("POST", "/api/resale/{listing}/sold", 409)] >= 10, answered
    assert answered[("POST", "/api/orders", 201)] >= 1, answered
    assert answered[("GET", "/api/events/{event}/listings", 200)] >= 5, answered
    assert answered[("GET", "/api/webhook-deliveries", 200)] >= 5, answered
    assert answered[("POST", "/api/webhook-deliveries/{delivery}/retry", 200)] >= 1, answered


def answers(har: Path) -> Counter[tuple[str, str, int]]:
    """How often each operation gave each status, from the fuzzer's HAR report."""
    counted: Counter[tuple[str, str, int]] = Counter()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        path = urlsplit(entry["request"]["url"]).path
        path = re.sub(r"^/api/orders/.+", "/api/orders/{number}", path)
        path = re.sub(r"^/api/resale/[^/]+/sold$", "/api/resale/{listing}/sold", path)
        path = re.sub(r"^/api/events/[^/]+/listings$", "/api/events/{event}/listings", path)
        path = re.sub(r"^/api/webhook-deliveries/[^/]+/retry$",
                      "/api/webhook-deliveries/{delivery}/retry", path)
        counted[(entry["request"]["method"], path, entry["response"]["status"])] += 1
    return counted
