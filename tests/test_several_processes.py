"""Several processes behind one webhook URL (README "Running several processes"): two real
``ticketbot run`` processes in webhook mode on one PostgreSQL database, with the shipped
defaults. The Bot API emulator plays Telegram and the load balancer: it delivers updates to
both in turn, several at once (as Telegram does with max_connections), each chat's one after
another. Fifty users go through their flows; one process is SIGKILLed midway.

Afterwards every flow completed, every effect happened once, each chat's updates were applied
in order and its answers arrived in order, and the survivor finished the dead one's updates
within seconds (the takeover time is printed). PostgreSQL only: SQLite is one machine's file.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import time
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.tools.emulator import BotApiEmulator
from storage import services
from storage.db.store import open_store, utcnow
from storage.models import Invitation, OutboxMail, Ticket, TicketState, UpdateInbox
from storage.services.importing.importer import import_document
from tests.conftest import ON_POSTGRES, SAMPLE_EVENTS, TEST_DATABASE_URL, asyncpg_dsn
from tests.harness import free_port
from tests.invariants import check_invariants
from tests.test_durability import Load, Pair, audit_count, name_suffix

pytestmark = pytest.mark.skipif(not ON_POSTGRES, reason="several processes share PostgreSQL")

ROOT = Path(__file__).resolve().parent.parent
BOT_USERNAME = "ticketbot_multi_bot"
PAIRS = 25  # a buyer and a friend each: 50 users
REACTION = 10.0  # long enough to see a takeover through
# What each step of the buyer's flow answers, in the order of the steps.
BUYER_SCREENS = ("My order", "will be put in the name of", "is now in the name of",
                 "Type your friend", "Send this ticket to", "sent to")


def document() -> dict:
    return {
        "events": SAMPLE_EVENTS,
        "orders": [
            {"number": f"MP-{n:04d}",
             "buyer": {"name": f"Camille {name_suffix(n)}", "email": f"buyer{n}@example.org",
                       "language": "en"},
             "tickets": [{"ref": f"T-MP-{n:04d}-{k}", "event": "fest-sat",
                          "category": "Pass samedi", "price": "89.00"} for k in (1, 2)]}
            for n in range(PAIRS)
        ],
    }


class RunProcess:
    """``ticketbot run`` as deployed, configured only by its environment."""

    def __init__(self, name: str, environment: dict[str, str], workdir: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/telegram/webhook"
        self.log_path = workdir / f"{name}.log"
        self.environment = {**environment, "TICKETBOT_HTTP_PORT": str(self.port),
                            "TICKETBOT_WEBHOOK_URL": self.url}
        self.workdir = workdir
        self.process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(ROOT / ".venv" / "bin" / "ticketbot"), "run", cwd=self.workdir,
                env=self.environment, stdout=log, stderr=log)
        async with asyncio.timeout(30), aiohttp.ClientSession() as session:
            while True:
                assert self.process.returncode is None, self.log_path.read_text()[-3000:]
                try:
                    async with session.get(f"http://127.0.0.1:{self.port}/healthz") as answer:
                        if answer.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.2)

    async def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(15):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()


@pytest.fixture
async def database():
    """A database of this test's own: ``ticketbot run`` has no schema option."""
    name = f"ticketbot_multi_{os.getpid()}"
    admin = await asyncpg.connect(asyncpg_dsn(TEST_DATABASE_URL), statement_cache_size=0)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield make_url(TEST_DATABASE_URL).set(database=name).render_as_string(
            hide_password=False)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def prepare(store, emulator) -> list[Pair]:
    await import_document(store, document())
    pairs = []
    for n in range(PAIRS):
        number = f"MP-{n:04d}"
        async with store.read() as session:
            kept, given = await session.scalars(
                select(Ticket.id).where(Ticket.ref.like(f"T-{number}-%")).order_by(Ticket.ref))
        pairs.append(Pair(
            number=number, link=await services.create_order_link(store, number),
            buyer=emulator.user(2000 + n, first_name="Camille", last_name=name_suffix(n)),
            friend=emulator.user(6000 + n, first_name="Friend", last_name=name_suffix(n)),
            buyer_name=f"Camille {name_suffix(n)}", friend_email=f"friend{n}@example.org",
            kept=kept, given=given))
    return pairs


class PatientLoad(Load):
    """Users who wait for each answer (up to REACTION), then go on regardless."""

    async def act(self, action) -> None:
        self.sent += 1
        try:
            await action
        except AssertionError:
            pass  # the answer was lost with the killed process; the effect was not
        await asyncio.sleep(random.uniform(0.0, 0.1))


def patient(user):
    """The user's actions with REACTION as their timeout (Load.play passes its own)."""
    for name in ("start", "send", "press_data"):
        method = getattr(user, name)

        def waiting(*args, _method=method, **kwargs):
            kwargs["timeout"] = REACTION
            return _method(*args, **kwargs)
        setattr(user, name, waiting)
    return user


async def unfinished_received_before(store, moment) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(UpdateInbox).where(
            UpdateInbox.done_at.is_(None), UpdateInbox.received_at <= moment))


async def test_two_processes_behind_one_url_survive_one_being_killed(database, tmp_path):
    random.seed(os.getpid())
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    store = await open_store(database, secret="test-secret")  # migrates, as `run` would
    environment = {
        **os.environ, "TICKETBOT_TOKEN": emulator.token,
        "TICKETBOT_TELEGRAM_API_URL": emulator.base_url, "TICKETBOT_BOT_USERNAME": BOT_USERNAME,
        "TICKETBOT_DATABASE_URL": database, "TICKETBOT_SECRET": "test-secret",
        "TICKETBOT_OUTBOX_DIR": str(tmp_path / "outbox"), "TICKETBOT_HTTP_HOST": "127.0.0.1",
    }
    environment.pop("TICKETBOT_WEBHOOK_SECRET", None)  # derived, the same in both
    bots = [RunProcess(f"bot{n}", environment, tmp_path) for n in (1, 2)]
    # The load balancer: both processes in turn, eight deliveries at once.
    emulator.webhook_targets = [bot.url for bot in bots]
    emulator.webhook_connections = 8
    load = PatientLoad(store, emulator)
    try:
        pairs = await prepare(store, emulator)
        for pair in pairs:
            patient(pair.buyer), patient(pair.friend)
        await asyncio.gather(*(bot.start() for bot in bots))
        started = time.monotonic()
        players = asyncio.gather(*(load.play(pair) for pair in pairs))
        while load.sent < PAIRS * 8 // 2:  # midway  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await bots[0].kill()
        killed_at, killed_monotonic = utcnow(), time.monotonic()
        try:
            async with asyncio.timeout(40):
                while await unfinished_received_before(store, killed_at):  # noqa: ASYNC110
                    await asyncio.sleep(0.1)
        except TimeoutError:
            async with store.read() as session:
                stuck = (await session.execute(
                    select(UpdateInbox.update_id, UpdateInbox.chat_id, UpdateInbox.attempts,
                           UpdateInbox.locked_until, UpdateInbox.done_at)
                    .where(UpdateInbox.chat_id.in_(
                        select(UpdateInbox.chat_id).where(UpdateInbox.done_at.is_(None))))
                    .order_by(UpdateInbox.chat_id, UpdateInbox.update_id))).all()
            raise AssertionError(f"not taken over (now {utcnow()}): {stuck}") from None
        takeover = time.monotonic() - killed_monotonic
        await players
        async with asyncio.timeout(30):
            while emulator.pending_updates or await store_unfinished(store):  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        await bots[1].stop()
    finally:
        for bot in bots:
            await bot.stop()
        await emulator.stop()

    try:
        async with store.read() as session:
            entries = (await session.execute(
                select(UpdateInbox.update_id, UpdateInbox.chat_id, UpdateInbox.done_at)
                .order_by(UpdateInbox.update_id))).all()
            assert [entry.update_id for entry in entries] == list(range(1, load.sent + 1))
            assert all(entry.done_at is not None for entry in entries)
            # Each chat's updates applied in order, whichever process got them.
            for _, chat_entries in itertools.groupby(
                    sorted(entries, key=lambda e: (e.chat_id, e.update_id)),
                    key=lambda e: e.chat_id):
                done = [entry.done_at for entry in chat_entries]
                assert done == sorted(done)
            for pair in pairs:
                kept = await session.get(Ticket, pair.kept)
                given = await session.get(Ticket, pair.given)
                assert (kept.state, kept.holder_name) == (TicketState.COMPLETED,
                                                          pair.buyer_name)
                assert (given.state, given.holder_telegram_id) == (TicketState.COMPLETED,
                                                                   pair.friend.id)
                assert await audit_count(session, "claimed_for_self", pair.kept) == 1
                assert await audit_count(session, "invited", pair.given) == 1
                assert await audit_count(session, "invitation_accepted", pair.given) == 1
                invitations = list(await session.scalars(
                    select(Invitation.id).where(Invitation.ticket_id == pair.given)))
                assert len(invitations) == 1
                assert await session.scalar(select(func.count()).select_from(OutboxMail).where(
                    OutboxMail.kind == "invitation",
                    OutboxMail.params["invitation_id"].as_integer() == invitations[0])) == 1
        await check_invariants(store)
    finally:
        await store.close()

    # Each buyer's answers arrived in the order of their steps (an answer lost with the killed
    # process may be missing, never out of place).
    for pair in pairs:
        texts = [str(call.params.get("text", "")) for call in pair.buyer.calls
                 if call.ok and call.method in ("sendMessage", "editMessageText")]
        positions = [next((i for i, text in enumerate(texts) if marker in text), None)
                     for marker in BUYER_SCREENS]
        seen = [position for position in positions if position is not None]
        assert seen == sorted(seen), (pair.number, texts)
        assert len(seen) >= len(BUYER_SCREENS) - 2
    survivor_log = bots[1].log_path.read_text()
    assert "Traceback" not in survivor_log, survivor_log[-3000:]
    print(f"\n{load.sent} updates from {2 * PAIRS} users, two processes, one killed after "
          f"{PAIRS * 8 // 2}; the survivor finished its updates {takeover:.1f} s after the "
          f"kill; {elapsed:.1f} s in all")


async def store_unfinished(store) -> int:
    async with store.read() as session:
        return await session.scalar(select(func.count()).select_from(UpdateInbox)
                                    .where(UpdateInbox.done_at.is_(None)))
