"""The chat runs every declared ticket action (conversations/presentation/actions.py) through
the handler of the kind of input it asks, never through code written for that one action: a
new action is its service, the rule offering it, its declaration and a test."""

from __future__ import annotations

import pytest

from conversations import asked_actions, confirmed_actions, handlers, ticket_menu
from conversations import callbacks as cb
from conversations.presentation.actions import DECLARED, Asks

KIND_HANDLERS = {
    Asks.CHOICE: {ticket_menu.on_assign_button},
    Asks.NOTHING: {confirmed_actions.on_ask, confirmed_actions.on_confirm,
                   confirmed_actions.on_press},
    Asks.NAME: {asked_actions.on_ask, asked_actions.on_confirm},
    Asks.EMAIL: {asked_actions.on_ask, asked_actions.on_confirm},
    Asks.PRICE: {asked_actions.on_ask, asked_actions.on_confirm},
    Asks.TARGET: {asked_actions.on_targets, asked_actions.on_choose,
                  asked_actions.on_target_confirm},
}


@pytest.mark.parametrize("action", DECLARED, ids=lambda action: action.name)
def test_each_button_of_an_action_goes_to_the_handler_of_its_kind(action):
    codes = [code for code in (action.code, cb.confirm_code(action), cb.choose_code(action))
             if code]
    for code in codes:
        assert handlers.BUTTONS[code] in KIND_HANDLERS[action.asks], (action.name, code)


@pytest.mark.parametrize("action", [a for a in DECLARED if a.asks in asked_actions.KINDS],
                         ids=lambda action: action.name)
def test_typed_input_of_an_action_goes_to_the_reader_of_its_kind(action):
    assert handlers.TEXT_STEPS[asked_actions.step_of(action)] is asked_actions.on_typed
