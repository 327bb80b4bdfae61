"""The simulated users: what each one does, and a driver that acts for hundreds at once.

Every buyer has an order of three tickets and, in each round, opens the deep link, opens a
ticket, assigns it (claims it for themselves, or sends it to a friend who then opens the claim
link and accepts), and looks at the overview again. :func:`plan` writes that down as a list of
steps, the same for both bots: the Ticketbot script presses the real buttons and checks what
it sees, the baseline script sends an update of the same kind in the same chat.

The driver posts updates through the emulator without waiting and follows the bot with the
emulator's observers, waking only the user whose chat the bot answered: the emulator's own
``EmulatedUser.press`` wakes every waiting user at every API call, which at hundreds of users
costs the benchmark process more CPU than the bot it measures.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot.tools.emulator import ApiCall, BotApiEmulator, ChatMessage, EmulatedUser

BUYER_ID_BASE = 10_000_000
FRIEND_ID_BASE = 20_000_000
MAX_ROUNDS = 3  # one ticket per round, three tickets per order
TICKETS_PER_ORDER = 3
CLAIM_LINK = re.compile(r"https://t\.me/[A-Za-z0-9_]+\?start=([A-Za-z0-9_-]+)")
_SHOWING = frozenset({"sendMessage", "editMessageText", "editMessageReplyMarkup"})


def letters(number: int) -> str:
    """A capitalised word of letters for a number: names may not contain digits."""
    word = ""
    number += 26  # at least two letters, as names need
    while number:
        number, digit = divmod(number, 26)
        word = chr(ord("a") + digit) + word
    return word.capitalize()


@dataclass(frozen=True)
class BenchOrder:
    """One simulated buyer's order, as imported for the run."""

    index: int
    number: str
    buyer_name: str
    refs: tuple[str, ...]

    @property
    def buyer_id(self) -> int:
        return BUYER_ID_BASE + self.index


def bench_orders(count: int, *, prefix: str = "BENCH", first: int = 0) -> list[BenchOrder]:
    return [
        BenchOrder(i, f"{prefix}-{i:07d}", f"Bench Buyer {letters(i)}",
                   tuple(f"T-{prefix}-{i:07d}-{k}" for k in range(1, TICKETS_PER_ORDER + 1)))
        for i in range(first, first + count)
    ]


# --- the plan ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One update a user sends (``kind`` is ``text`` or ``press``), or, with kind ``wait``,
    waiting for the buyer's news (no update)."""

    actor: str  # "buyer" or "friend"
    kind: str
    name: str
    round: int


def plan(index: int, rounds: int, *, claims_only: bool = False) -> list[Step]:
    """Buyer ``index``'s steps: claim and send-to-a-friend alternate from one round to the next
    (and from one buyer to the next), so a run mixes both. ``claims_only``: every round is a
    claim, no step waits for news (which queue behind a backlog of notifications)."""
    if not 1 <= rounds <= MAX_ROUNDS:
        raise ValueError(f"rounds must be between 1 and {MAX_ROUNDS}")
    steps: list[Step] = []
    claims = 0
    for r in range(rounds):
        steps += [Step("buyer", "text", "open the deep link", r),
                  Step("buyer", "press", "open a ticket", r),
                  Step("buyer", "press", "assign it", r)]
        if claims_only or (index + r) % 2 == 0:
            steps.append(Step("buyer", "press", "claim for myself", r))
            if claims:
                # One name per event: a second claim is in another name, typed.
                steps.append(Step("buyer", "text", "type another name", r))
            steps.append(Step("buyer", "press", "confirm", r))
            claims += 1
        else:
            steps += [Step("buyer", "press", "send to a friend", r),
                      Step("buyer", "text", "type the e-mail", r),
                      Step("buyer", "press", "send", r),
                      Step("friend", "text", "friend opens the claim link", r),
                      Step("friend", "press", "friend accepts", r),
                      Step("buyer", "wait", "buyer is told", r)]
        steps.append(Step("buyer", "press", "view the overview again", r))
    return steps


def update_count(users: int, rounds: int) -> int:
    return sum(1 for i in range(users) for s in plan(i, rounds) if s.kind != "wait")


# --- the driver -------------------------------------------------------------------------------


class StepFailed(Exception):
    """The bot did not do what a user expected (a wrong screen, or no answer in time)."""


@dataclass
class _InFlight:
    update_id: int
    is_press: bool
    done: asyncio.Event = field(default_factory=asyncio.Event)
    fetched_at: float | None = None
    first_call_at: float | None = None
    answered: bool = False
    shown: bool = False


@dataclass
class Sample:
    step: str
    latency: float  # seconds from getUpdates handing the update out to the bot's first call
    finished_at: float


class Driver:
    """Posts updates for many users at once and waits for the bot, chat by chat."""

    def __init__(self, emulator: BotApiEmulator, *, timeout: float = 120.0,
                 quiet_after_answer: float = 0.3) -> None:
        self.emulator = emulator
        self.timeout = timeout
        self.quiet_after_answer = quiet_after_answer
        self.samples: list[Sample] = []
        self.errors: list[str] = []
        self.bot_errors: Counter[str] = Counter()
        self._in_flight: dict[int, _InFlight] = {}
        self._watchers: dict[int, asyncio.Event] = {}
        emulator.on_update_fetched = self._on_fetched
        emulator.on_call_answered = self._on_call

    def detach(self) -> None:
        self.emulator.on_update_fetched = None
        self.emulator.on_call_answered = None

    # the emulator's observers

    def _on_fetched(self, update_id: int, chat_id: int, at: float) -> None:
        flight = self._in_flight.get(chat_id)
        if flight is not None and flight.update_id == update_id:
            flight.fetched_at = at

    def _on_call(self, call: ApiCall) -> None:
        chat_id = call.chat_id
        if chat_id is None:
            return
        if call.status != 200 and call.description and "not modified" not in call.description:
            self.bot_errors[f"{call.method}: {call.description[:80]}"] += 1
        watcher = self._watchers.get(chat_id)
        if watcher is not None:
            watcher.set()
        flight = self._in_flight.get(chat_id)
        if flight is None or flight.fetched_at is None or call.time < flight.fetched_at:
            return
        if flight.first_call_at is None or call.time < flight.first_call_at:
            flight.first_call_at = call.time
        if call.method == "answerCallbackQuery":
            flight.answered = True
            if not flight.shown:
                # A refusal is answered with an alert and may show nothing more.
                asyncio.get_running_loop().call_later(self.quiet_after_answer, flight.done.set)
        elif call.method in _SHOWING:
            flight.shown = True
        if flight.shown and (flight.answered or not flight.is_press):
            flight.done.set()

    # acting

    async def act(self, user: EmulatedUser, step: str, *, text: str | None = None,
                  data: str | None = None, message: ChatMessage | None = None) -> None:
        """Send one update (``text``, or a press carrying ``data``) and wait for the bot."""
        if user.id in self._in_flight:
            raise RuntimeError(f"user {user.id} already waits for the bot")
        if text is not None:
            update_id = user.post_text(text)
        else:
            assert data is not None
            update_id = user.post_press_data(data, message=message)
        flight = _InFlight(update_id, is_press=text is None)
        self._in_flight[user.id] = flight
        try:
            async with asyncio.timeout(self.timeout):
                await flight.done.wait()
        except TimeoutError:
            raise StepFailed(f"{step}: no answer within {self.timeout:.0f} s") from None
        finally:
            del self._in_flight[user.id]
        assert flight.fetched_at is not None and flight.first_call_at is not None
        self.samples.append(Sample(step, flight.first_call_at - flight.fetched_at,
                                   time.monotonic()))

    async def wait_until(self, user: EmulatedUser, condition: Callable[[], bool],
                         what: str) -> None:
        """Wait for something the bot does in this chat on its own (news), no update sent."""
        async with asyncio.timeout(self.timeout):
            while not condition():
                event = self._watchers.setdefault(user.id, asyncio.Event())
                event.clear()
                await event.wait()
        self._watchers.pop(user.id, None)


def keyboard_message(user: EmulatedUser) -> ChatMessage:
    """The newest screen with buttons; ticket pictures the bot sends on its own are not one."""
    for message in reversed(user.messages):
        if message.buttons and message.media is None:
            return message
    raise StepFailed("the bot has shown no buttons")


def find_button(user: EmulatedUser, label: str, step: str) -> tuple[ChatMessage, str]:
    """The newest keyboard and the callback data of its button labelled ``label``."""
    message = keyboard_message(user)
    try:
        found = message.button(label)
    except AssertionError:
        raise StepFailed(f"{step}: no button {label!r} on {message.text[:120]!r} "
                         f"(buttons: {message.button_texts()})") from None
    assert found.callback_data is not None
    return message, found.callback_data


# --- the two scripts --------------------------------------------------------------------------


@dataclass
class Buyer:
    order: BenchOrder
    token: str
    user: EmulatedUser
    friends: dict[int, EmulatedUser]
    seen_messages: int = 0  # the buyer's messages before a friend accepts
    used_links: set[str] = field(default_factory=set)  # claim links already given a friend


def make_buyers(emulator: BotApiEmulator, orders: Sequence[BenchOrder], tokens: dict[str, str],
                rounds: int) -> list[Buyer]:
    buyers = []
    for order in orders:
        first, last = order.buyer_name.rsplit(" ", 1)
        user = emulator.user(order.buyer_id, first_name=first, last_name=last,
                             language_code="en")
        friends = {
            r: emulator.user(FRIEND_ID_BASE + order.index * MAX_ROUNDS + r, first_name="Friend",
                             last_name=letters(order.index * MAX_ROUNDS + r), language_code="en")
            for r in range(rounds)
        }
        buyers.append(Buyer(order, tokens.get(order.number, "no-token"), user, friends))
    return buyers


async def ticketbot_step(driver: Driver, buyer: Buyer, step: Step) -> None:
    """Do ``step`` as a person would in Ticketbot's chat, checking the screens on the way."""
    order, user = buyer.order, buyer.user
    ref = order.refs[step.round]

    async def press(label: str, who: EmulatedUser = user) -> None:
        message, data = find_button(who, label, step.name)
        await driver.act(who, step.name, data=data, message=message)

    def expect(text: str) -> None:
        # The screen with buttons: a notice or a forwardable link may come after it.
        shown = keyboard_message(user).text
        if text not in shown:
            raise StepFailed(f"{step.name}: expected {text!r} in {shown[:200]!r}")

    match step.name:
        case "open the deep link":
            await driver.act(user, step.name, text=f"/start {buyer.token}")
            expect(f"My order {order.number}")
        case "open a ticket":
            await press(ref)
        case "assign it":
            await press("Assign the ticket")
        case "claim for myself":
            await press("Claim the ticket for myself")
        case "type another name":
            await driver.act(user, step.name,
                             text=f"Guest {letters(order.index * MAX_ROUNDS + step.round)}")
        case "confirm":
            await press("Confirm")
            expect("Completed")
        case "send to a friend":
            await press("Send to a friend")
        case "type the e-mail":
            await driver.act(user, step.name,
                             text=f"friend.{order.index}.{step.round}@bench.example")
        case "send":
            await press("Send")
            expect("Pending")
        case "friend opens the claim link":
            # The link comes in a message of its own, which may follow the press's answer.
            await driver.wait_until(
                user, lambda: claim_link(user, buyer.used_links) is not None, step.name)
            token = claim_link(user, buyer.used_links)
            assert token is not None
            buyer.used_links.add(token)
            await driver.act(buyer.friends[step.round], step.name, text=f"/start {token}")
        case "friend accepts":
            friend = buyer.friends[step.round]
            buyer.seen_messages = len(user.messages)
            await press("Accept the ticket", friend)
        case "buyer is told":
            # The news of the claim, not just any message: the ticket picture of an earlier
            # round's own claim may still be on its way (notifications are paced).
            seen = buyer.seen_messages
            await driver.wait_until(
                user, lambda: any("Open my order" in label for m in user.messages[seen:]
                                  for label in m.button_texts()), step.name)
        case "view the overview again":
            # After news of a claim the buyer opens the order from the news message.
            await press("Open my order" if buyer.seen_messages else "Refresh")
            buyer.seen_messages = 0
            expect(f"My order {order.number}")
        case _:
            raise ValueError(f"unknown step {step.name!r}")


def claim_link(user: EmulatedUser, used: set[str]) -> str | None:
    """The token of the newest claim link the bot gave the buyer and not yet used."""
    for message in reversed(user.messages):
        for token in reversed(CLAIM_LINK.findall(message.text)):
            if token not in used:
                return token
    return None


async def baseline_step(driver: Driver, buyer: Buyer, step: Step) -> None:
    """Send an update of the step's kind in the step's chat; the baseline answers anything."""
    who = buyer.friends[step.round] if step.actor == "friend" else buyer.user
    if step.kind == "text":
        await driver.act(who, step.name, text=f"/start {buyer.token}")
    elif step.kind == "press":
        message = keyboard_message(who)
        data = message.buttons[0][0].callback_data
        assert data is not None
        await driver.act(who, step.name, data=data, message=message)


Script = Callable[[Driver, Buyer, Step], Awaitable[None]]


async def run_buyer(driver: Driver, buyer: Buyer, rounds: int, script: Script, *,
                    claims_only: bool = False) -> int:
    """Run one buyer's plan; on a failed step, record it and stop this buyer. Returns the
    number of updates sent."""
    sent = 0
    for step in plan(buyer.order.index, rounds, claims_only=claims_only):
        try:
            await script(driver, buyer, step)
        except StepFailed as failure:
            driver.errors.append(f"buyer {buyer.order.index}: {failure}")
            return sent
        if step.kind != "wait":
            sent += 1
    return sent


async def run_buyers(driver: Driver, buyers: Sequence[Buyer], rounds: int,
                     script: Script, *, claims_only: bool = False) -> tuple[int, float, float]:
    """All buyers at once; returns (updates sent, start, end) in ``time.monotonic()``."""
    started = time.monotonic()
    counts = await asyncio.gather(*(run_buyer(driver, b, rounds, script,
                                              claims_only=claims_only) for b in buyers))
    return sum(counts), started, time.monotonic()


def percentile(values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(fraction * len(ordered))))
    return ordered[rank - 1]


def latency_summary(samples: Sequence[Sample]) -> dict[str, float]:
    values = [s.latency * 1000 for s in samples]
    return {
        "p50": percentile(values, 0.50),
        "p95": percentile(values, 0.95),
        "p99": percentile(values, 0.99),
        "max": max(values, default=0.0),
        "mean": sum(values) / len(values) if values else 0.0,
    }


def latency_by_step(samples: Sequence[Sample]) -> dict[str, dict[str, float]]:
    by_step: dict[str, list[Sample]] = defaultdict(list)
    for sample in samples:
        by_step[sample.step].append(sample)
    return {step: {"count": len(group), **latency_summary(group)}
            for step, group in by_step.items()}
