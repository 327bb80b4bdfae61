"""Typed input answered at once: a name or an e-mail already on another ticket of the event is
refused as it is typed (before any "Confirm"), and text typed after its step expired says so and
shows where the user was. End to end through the emulator."""

from __future__ import annotations

from sqlalchemy import func, select, update

from storage import chat_state
from storage.db.store import utcnow
from storage.models import ChatState, Ticket, TicketState
from tests.test_buyer_flow import FRIEND, open_order, press_send, send_to_friend


async def claim_for_myself(buyer, ref: str, name: str | None = None):
    await buyer.press(ref)
    await buyer.press("Assign the ticket")
    shown = await buyer.press("Claim the ticket for myself")
    if name is not None:
        shown = await buyer.send(name)
    return shown


async def holders(store) -> dict[str, tuple[str, str | None]]:
    async with store.read() as session:
        rows = await session.execute(select(Ticket.ref, Ticket.state, Ticket.holder_name))
        return {ref: (state.value, holder) for ref, state, holder in rows}


async def test_a_taken_name_is_refused_as_the_buyer_types_it(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await claim_for_myself(buyer, "T-DF-100000-1", "Alex Durand")
    await buyer.press("Confirm")
    before = await holders(harness.store)
    typed = await claim_for_myself(buyer, "T-DF-100000-2", "  alex   DURAND ")
    assert "already in the name of alex DURAND" in typed.text
    assert not any("Confirm" in label for label in typed.last.button_texts())
    # The screen before (proposing the buyer's own name) still stands; nothing changed.
    done = await buyer.press("Confirm")
    assert "in the name of Camille Martin" in done.text
    assert before["T-DF-100000-1"] == ("completed", "Alex Durand")


async def test_a_taken_email_is_refused_before_the_send_button(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    await press_send(buyer)
    typed = await send_to_friend(buyer, "T-DF-100000-2", "ALEX@example.org")
    assert "already used for another ticket" in typed.text
    assert not any("Send" in label for label in typed.last.button_texts())
    async with harness.store.read() as session:
        pending = await session.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.state == TicketState.PENDING))
    assert pending == 1
    # Another address goes on to the confirmation as before.
    assert "Send this ticket to" in (await buyer.send("sam@example.org")).text


async def test_a_rename_to_a_taken_name_is_refused_as_typed_but_not_its_own_name(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await claim_for_myself(buyer, "T-DF-100000-1", "Alex Durand")
    await buyer.press("Confirm")
    await claim_for_myself(buyer, "T-DF-100000-2")
    await buyer.press("Confirm")
    await buyer.press("T-DF-100000-2")
    await buyer.press("Correct the name")
    refused = await buyer.send("Alex DURAND")
    assert "already in the name of Alex DURAND" in refused.text
    # Correcting the case of one's own name is not taking another ticket's name.
    own = await buyer.send("camille martin")
    assert "Put the ticket in the name of" in own.text
    await buyer.press("Confirm")
    assert (await holders(harness.store))["T-DF-100000-2"] == ("completed", "camille martin")
    assert await chat_state.get_step(harness.store, buyer.id) is None  # ended with the rename


async def test_a_friend_typing_a_taken_name_is_refused_at_once(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await claim_for_myself(buyer, "T-DF-100000-1")
    await buyer.press("Confirm")
    await send_to_friend(buyer, "T-DF-100000-2", "alex@example.org")
    _, token = await press_send(buyer)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await friend.start(token)
    refused = await friend.send("Camille MARTIN")
    assert "already in the name of Camille MARTIN" in refused.text
    assert not any("Accept" in label for label in refused.last.button_texts())
    accepted = await friend.press("Accept the ticket")  # the proposed name is still free
    assert "Alex Durand" in accepted.text


async def expire_steps(store) -> None:
    async with store.write() as session:
        await session.execute(update(ChatState).values(expires_at=utcnow()))


async def test_text_after_an_expired_step_says_so_and_shows_the_ticket(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await buyer.press("T-DF-100000-1")
    await buyer.press("Assign the ticket")
    await buyer.press("Send to a friend")
    await expire_steps(harness.store)
    late = await buyer.send("alex@example.org")
    assert "That step expired" in late.text
    assert "I did not expect a message here" not in late.text
    assert "Ticket T-DF-100000-1" in late.text
    assert any("Assign the ticket" in label for label in late.last.button_texts())
    assert (await holders(harness.store))["T-DF-100000-1"] == ("to_assign", None)
    # The step is over: more text is simply unexpected.
    assert "did not expect" in (await buyer.send("alex@example.org")).text


async def test_text_after_an_expired_step_in_french(harness):
    buyer, _ = await open_order(harness)
    await buyer.press("T-DF-100000-1")
    await buyer.press("Attribuer le billet")
    await buyer.press("Mettre le billet à mon nom")
    await expire_steps(harness.store)
    late = await buyer.send("Alex Durand")
    assert "Cette étape a expiré" in late.text and "Billet T-DF-100000-1" in late.text


async def test_a_friend_typing_after_the_step_expired_sees_the_ticket_again(harness):
    buyer, _ = await open_order(harness, language="en", user_language="en")
    await send_to_friend(buyer, "T-DF-100000-1", "alex@example.org")
    _, token = await press_send(buyer)
    friend = harness.user(FRIEND, "Alex", "Durand", language_code="en")
    await friend.start(token)
    await expire_steps(harness.store)
    mark = friend.mark()
    await friend.send("Alex Dupont")
    await friend.wait_for_message(lambda m: "That step expired" in m.text, since=mark)
    claim = await friend.wait_for_message(lambda m: "sent you a ticket" in m.text, since=mark)
    assert "Alex Durand" in claim.text and "Alex Dupont" not in claim.text
