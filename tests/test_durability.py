"""Nothing lost, nothing doubled: a bot process is killed (SIGKILL) at random moments while
twenty buyers claim one ticket each for themselves and send another to a friend who accepts it,
then restarted. The Bot API emulator lives in the test process and outlives every bot.

Afterwards every update the emulator handed out is done in the inbox, every action took effect
exactly once, the store's invariants hold, and the bots' logs name nobody.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from bot.tools.emulator import BotApiEmulator, EmulatedUser
from storage import services, tokens
from storage.models import AuditEntry, Invitation, OutboxMail, Ticket, TicketState, UpdateInbox
from storage.services.importing.importer import import_document
from tests.conftest import ON_POSTGRES, SAMPLE_EVENTS, postgres_schema
from tests.invariants import check_invariants

ROOT = Path(__file__).resolve().parent.parent
BOT_USERNAME = "ticketbot_crash_bot"
PAIRS = 20
KILLS = 4
REACTION = 1.5  # how long a user waits for an answer before going on anyway


def name_suffix(n: int) -> str:
    """Letters only (names may hold no digits): Ab, Ac, …"""
    return chr(65 + n // 26) + chr(97 + n % 26)


def document() -> dict:
    return {
        "events": SAMPLE_EVENTS,
        "orders": [
            {
                "number": f"KO-{n:04d}",
                "buyer": {"name": f"Camille {name_suffix(n)}", "email": f"buyer{n}@example.org",
                          "language": "en"},
                "tickets": [{"ref": f"T-KO-{n:04d}-{k}", "event": "fest-sat",
                             "category": "Pass samedi", "price": "89.00"} for k in (1, 2)],
            }
            for n in range(PAIRS)
        ],
    }


class BotProcess:
    """Starts, kills and restarts ``tests/bot_process.py``; its logs pile up in one file."""

    def __init__(self, environment: dict[str, str], log_path: Path) -> None:
        self.environment = environment
        self.log_path = log_path
        self.process: asyncio.subprocess.Process | None = None
        self.starts = 0

    async def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.bot_process", cwd=ROOT, env=self.environment,
                stdout=asyncio.subprocess.PIPE, stderr=log)
        self.starts += 1
        async with asyncio.timeout(20):
            line = await self.process.stdout.readline()
        assert line.strip() == b"ready", "the bot process did not start; see " + str(
            self.log_path)

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        await self.process.wait()

    async def stop(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                async with asyncio.timeout(10):
                    await self.process.wait()
            except TimeoutError:
                await self.kill()


@dataclass
class Pair:
    number: str
    link: str
    buyer: EmulatedUser
    friend: EmulatedUser
    buyer_name: str
    friend_email: str
    kept: int = 0  # the ticket the buyer claims for themselves
    given: int = 0  # the ticket sent to the friend


class Load:
    """The scripted users. Each sends its updates in order, waits a little for an answer and
    goes on regardless: an update sent while the bot is dead is handled after its restart."""

    def __init__(self, store, emulator: BotApiEmulator) -> None:
        self.store = store
        self.emulator = emulator
        self.sent = 0

    async def act(self, action) -> None:
        self.sent += 1
        try:
            await action
        except AssertionError:
            pass  # no answer in time: the bot is down, or its answer was lost with it
        await asyncio.sleep(random.uniform(0.0, 0.2))

    async def first_message(self, user: EmulatedUser) -> None:
        """Buttons need a message to sit on: wait for the bot's first answer."""
        async with asyncio.timeout(30):
            while not user.messages:
                await user.wait_for_message(timeout=30)

    async def play(self, pair: Pair) -> None:
        await asyncio.sleep(random.uniform(0, 2))
        buyer, friend = pair.buyer, pair.friend
        await self.act(buyer.start(pair.link, timeout=REACTION))
        await self.first_message(buyer)
        await self.act(buyer.press_data(f"me:{pair.kept}", timeout=REACTION))
        await self.act(buyer.press_data(f"mey:{pair.kept}", timeout=REACTION))
        await self.act(buyer.press_data(f"fr:{pair.given}", timeout=REACTION))
        await self.act(buyer.send(pair.friend_email, timeout=REACTION))
        await self.act(buyer.press_data(f"fry:{pair.given}", timeout=REACTION))
        invitation_id = await self.invitation_of(pair.given)
        token = tokens.claim_token(await self.store.secret(), invitation_id)
        await self.act(friend.start(token, timeout=REACTION))
        await self.first_message(friend)
        await self.act(friend.press_data(f"ca:{invitation_id}", timeout=REACTION))

    async def invitation_of(self, ticket_id: int) -> int:
        async with asyncio.timeout(30):
            while True:
                async with self.store.read() as session:
                    found = await session.scalar(
                        select(Invitation.id).where(Invitation.ticket_id == ticket_id))
                if found is not None:
                    return found
                await asyncio.sleep(0.1)


async def prepare(store, emulator) -> list[Pair]:
    await import_document(store, document())
    pairs = []
    for n in range(PAIRS):
        number = f"KO-{n:04d}"
        async with store.read() as session:
            kept, given = await session.scalars(
                select(Ticket.id).where(Ticket.ref.like(f"T-{number}-%")).order_by(Ticket.ref))
        pair = Pair(
            number=number, link=await services.create_order_link(store, number),
            buyer=emulator.user(1000 + n, first_name="Camille", last_name=name_suffix(n)),
            friend=emulator.user(5000 + n, first_name="Friend", last_name=name_suffix(n)),
            buyer_name=f"Camille {name_suffix(n)}", friend_email=f"friend{n}@example.org",
            kept=kept, given=given)
        pairs.append(pair)
    return pairs


async def settled(store, emulator, expected: int) -> bool:
    async with store.read() as session:
        done = await session.scalar(select(func.count()).select_from(UpdateInbox)
                                    .where(UpdateInbox.done_at.is_not(None)))
    return emulator.pending_updates == 0 and done == expected


async def audit_count(session, action: str, ticket_id: int) -> int:
    return await session.scalar(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == action, AuditEntry.ticket_id == ticket_id))


async def test_killed_bot_loses_no_update_and_applies_none_twice(store, tmp_path):
    random.seed(os.getpid())
    emulator = BotApiEmulator(bot_username=BOT_USERNAME)
    await emulator.start()
    environment = {
        **os.environ, "BOT_PROCESS_TOKEN": emulator.token,
        "BOT_PROCESS_API_URL": emulator.base_url, "BOT_PROCESS_USERNAME": BOT_USERNAME,
        "BOT_PROCESS_DATABASE_URL": store.url, "BOT_PROCESS_SECRET": "test-secret",
        "BOT_PROCESS_OUTBOX": str(tmp_path / "outbox"),
        "BOT_PROCESS_SCHEMA": postgres_schema() if ON_POSTGRES else "",
    }
    bot = BotProcess(environment, tmp_path / "bots.log")
    load = Load(store, emulator)
    try:
        pairs = await prepare(store, emulator)
        await bot.start()
        started = time.monotonic()
        players = asyncio.gather(*(load.play(pair) for pair in pairs))
        for _ in range(KILLS):
            await asyncio.sleep(random.uniform(0.8, 2.0))
            await bot.kill()
            await asyncio.sleep(random.uniform(0.0, 0.5))
            await bot.start()
        await players
        try:
            async with asyncio.timeout(30):
                while not await settled(store, emulator, load.sent):  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        except TimeoutError:
            async with store.read() as session:
                done = set(await session.scalars(select(UpdateInbox.update_id)
                                                 .where(UpdateInbox.done_at.is_not(None))))
            missing = sorted(set(range(1, load.sent + 1)) - done)
            raise AssertionError(f"updates never done: {missing}") from None
        elapsed = time.monotonic() - started
        await bot.stop()
    finally:
        await bot.stop()
        await emulator.stop()

    async with store.read() as session:
        ids = set(await session.scalars(select(UpdateInbox.update_id)))
        unfinished = await session.scalar(select(func.count()).select_from(UpdateInbox)
                                          .where(UpdateInbox.done_at.is_(None)))
        assert ids == set(range(1, load.sent + 1)) and unfinished == 0
        for pair in pairs:
            kept = await session.get(Ticket, pair.kept)
            given = await session.get(Ticket, pair.given)
            assert (kept.state, kept.holder_name) == (TicketState.COMPLETED, pair.buyer_name)
            assert (given.state, given.holder_telegram_id) == (TicketState.COMPLETED,
                                                               pair.friend.id)
            assert given.holder_name == pair.friend.display_name
            assert await audit_count(session, "claimed_for_self", pair.kept) == 1
            assert await audit_count(session, "invited", pair.given) == 1
            assert await audit_count(session, "invitation_accepted", pair.given) == 1
            assert await session.scalar(select(func.count()).select_from(AuditEntry).where(
                AuditEntry.action == "order_opened", AuditEntry.actor_telegram_id == pair.buyer.id
            )) == 1
            invitations = list(await session.scalars(
                select(Invitation.id).where(Invitation.ticket_id == pair.given)))
            assert len(invitations) == 1
            mails = await session.scalar(select(func.count()).select_from(OutboxMail).where(
                OutboxMail.kind == "invitation",
                OutboxMail.params["invitation_id"].as_integer() == invitations[0]))
            assert mails == 1
    checked = await check_invariants(store)

    logs = (tmp_path / "bots.log").read_text()
    replayed = sum(int(n) for n in re.findall(r"replaying (\d+) unfinished", logs))
    for pair in pairs:
        for secret in (pair.link, pair.friend_email, pair.buyer_name, pair.friend.display_name):
            assert secret not in logs
    assert emulator.token not in logs
    assert " ERROR " not in logs and "Traceback" not in logs, logs[-3000:]
    assert bot.starts == KILLS + 1
    print(f"\n{load.sent} updates, {KILLS} kills, {replayed} replayed from the inbox, "
          f"{checked} invariant facts, {elapsed:.1f} s")

