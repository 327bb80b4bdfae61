"""A handler that needs the user's language and the ticket loads them once per update.

The ticket screens read the ticket, its order and event, the access check and the viewer's
chosen language in one statement (``storage/reads/loading.py``); a handler that then asks the store
for the language again, or reads the ticket a second time to learn what it already holds (the
resale price range, the exchange targets), pays a round trip per press for nothing. These tests
record the SQL each update's handlers send, through the real Application against the emulator,
and count the statements that read the user's language and those that read the ticket.
"""

from __future__ import annotations

import asyncio
import re
from collections import defaultdict
from collections.abc import Awaitable
from typing import Any

import pytest
from sqlalchemy import event
from telegram import Update
from telegram.ext import BaseUpdateProcessor

from tests.test_buyer_flow import FRIEND, open_order, press_send, send_to_friend
from tests.test_typed_input import expire_steps

_SELECT = re.compile(r"^\s*SELECT\b", re.IGNORECASE)


class UpdateStatements(BaseUpdateProcessor):
    """Wraps the application's inner update processor, which runs an update's handlers in the
    update's own task, and keeps the statements sent from that task, by update."""

    def __init__(self, application, engine) -> None:
        super().__init__(1)
        self.processor = application.update_processor
        self.inner = self.processor.inner
        self.engine = engine
        self.running: dict[asyncio.Task, int] = {}
        self.by_update: dict[int, list[str]] = defaultdict(list)

    def __enter__(self) -> UpdateStatements:
        self.processor.inner = self
        event.listen(self.engine, "before_cursor_execute", self._record)
        return self

    def __exit__(self, *exc_info: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._record)
        self.processor.inner = self.inner

    def _record(self, connection, cursor, statement: str, *args: Any) -> None:
        update_id = self.running.get(asyncio.current_task())
        if update_id is not None:
            self.by_update[update_id].append(" ".join(statement.split()))

    async def do_process_update(self, update: object, coroutine: Awaitable[Any]) -> None:
        task = asyncio.current_task()
        self.running[task] = update.update_id if isinstance(update, Update) else -1
        try:
            await self.inner.do_process_update(update, coroutine)
        finally:
            del self.running[task]

    async def initialize(self) -> None:
        await self.inner.initialize()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    def last(self) -> list[str]:
        """The statements of the newest update handled."""
        return self.by_update[max(self.by_update)]


def language_reads(statements: list[str]) -> list[str]:
    """Statements that read the user's chosen language (alone, or with a screen)."""
    return [s for s in statements if _SELECT.match(s) and "chosen_language" in s]


def ticket_reads(statements: list[str]) -> list[str]:
    """Statements that read a ticket the user manages: the screen read, or a service's."""
    return [s for s in statements
            if _SELECT.match(s) and re.search(r"\btickets\b", s) and "order_access" in s]


def assert_once(statements: list[str], *, ticket: bool = True) -> None:
    languages, tickets = language_reads(statements), ticket_reads(statements)
    listing = "\n".join(statements)
    assert len(languages) == 1, f"the language was read {len(languages)} times:\n{listing}"
    if ticket:
        assert len(tickets) == 1, f"the ticket was read {len(tickets)} times:\n{listing}"


@pytest.fixture
async def recorded(harness):
    with UpdateStatements(harness.application, harness.store.engine.sync_engine) as recorder:
        yield harness, recorder


async def test_a_ticket_menu_press_is_one_statement(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    menu = await buyer.press("T-DF-100000-1")
    assert "Ticket T-DF-100000-1" in menu.text
    pressed = statements.last()
    assert_once(pressed)
    assert len(pressed) == 1, pressed  # the ticket, its order and event, access and language


async def test_each_press_of_a_ticket_flow_reads_language_and_ticket_once(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    for label in ("T-DF-100000-1", "Assign the ticket", "Send to a friend"):
        await buyer.press(label)
        assert_once(statements.last())
    for label in ("« Back", "Sell this ticket"):
        await buyer.press(label)
        assert_once(statements.last())  # the price range comes from the screen's read
    await buyer.press("« Back")
    await buyer.press("Exchange")
    assert_once(statements.last())  # the targets come from the screen's read


async def test_typed_input_reads_language_and_ticket_once(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Sell this ticket")
    asked = await buyer.send("80")
    assert "Offer this ticket for resale" in asked.text
    assert_once(statements.last())
    refused = await buyer.send("1000")  # out of bounds: refused in the language already read
    assert "between" in refused.text
    assert_once(statements.last())
    await buyer.send("/cancel")
    asked = await send_to_friend(buyer, "T-DF-100000-2", "alex@example.org")
    assert "Send this ticket to" in asked.text
    assert_once(statements.last())


async def test_cancel_and_an_expired_step_read_language_and_ticket_once(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    cancelled = await buyer.send("/cancel")
    assert "Cancelled." in cancelled.text and "My order DF-100000" in cancelled.text
    assert_once(statements.last())
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    await expire_steps(harness.store)
    late = await buyer.send("alex@example.org")
    assert "That step expired" in late.text and "Ticket T-DF-100000-1" in late.text
    assert_once(statements.last())


async def test_a_stale_press_reads_the_language_once(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Sell this ticket")
    await buyer.send("80")
    await buyer.press("Confirm")
    await buyer.press("T-DF-100000-1")
    asked = await buyer.press("Cancel the sale")
    again = asked.last.button("Yes, cancel the sale").callback_data
    await buyer.press("Yes, cancel the sale")
    # The same press once more, as from a second device: the sale is over, so the press is
    # refused and the ticket's menu shown as it stands now.
    stale = await buyer.press_data(again)
    assert stale.callback_answer is not None and stale.callback_answer.show_alert
    assert "Sell this ticket" in stale.last.button_texts()[1]
    pressed = statements.last()
    # The refused service read the ticket, then the menu read it as it is now; the language
    # came with that read.
    assert len(language_reads(pressed)) == 1, pressed


async def test_an_action_no_longer_offered_shows_the_menu_from_its_one_read(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    menu = await buyer.press("T-DF-100000-1")
    sell = menu.last.button("Sell this ticket").callback_data
    await buyer.press("Sell this ticket")
    await buyer.send("80")
    await buyer.press("Confirm")
    # The old menu's "Sell" pressed again: the ticket is on sale, so its menu is shown as it
    # stands, from the read that found the action gone.
    stale = await buyer.press_data(sell)
    assert "✖ Cancel the sale" in stale.last.button_texts()
    assert_once(statements.last())


async def test_a_friends_claim_screen_reads_the_language_with_the_claim(recorded):
    harness, statements = recorded
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await friend.start(token)
    declined = await friend.press("Decline")
    assert "Decline the ticket" in declined.text
    assert_once(statements.last(), ticket=False)
    # Read with the friend's right to see the claim, not in a statement of its own.
    assert "claim_grants" in language_reads(statements.last())[0], statements.last()
    back = await friend.press("« Back")
    assert "sent you a ticket" in back.text
    assert_once(statements.last(), ticket=False)
    assert "claim_grants" in language_reads(statements.last())[0], statements.last()


async def test_a_deep_link_is_opened_one_statement_per_change_then_the_screen_read(recorded):
    harness, statements = recorded
    await open_order(harness, language="en", user_language="en")
    start = statements.last()
    listing = "\n".join(start)
    # The step ended, the user remembered (the language read back), the link read, the order
    # granted and the grant audited: one statement each, then the order screen.
    assert [s.split()[0].upper() for s in start] == [
        "DELETE", "INSERT", "SELECT", "INSERT", "INSERT", "SELECT"], listing
    assert "link_tokens" in start[2] and "order_access" in start[3], listing
    assert "audit_entries" in start[4], listing
    assert_once(start, ticket=False)
