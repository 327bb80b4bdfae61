"""The Bot API methods of a private chat: ``getMe``, commands, ``sendMessage``, edits,
deletes, callback answers, the menu button and chat actions, with their parameter checks.

:class:`ChatMethods` is mixed into :class:`~bot.tools.emulator.server.BotApiEmulator`, which routes
each ``POST /bot<token>/<method>`` to one of these and keeps the chats they change.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from bot.tools.emulator.errors import _ApiError, _bad_request, _utf16_len
from bot.tools.emulator.html import _strip_text, parse_html
from bot.tools.emulator.records import ApiCall, CallbackAnswer, _Chat, _StoredMessage
from bot.tools.emulator.validation import (
    _CHAT_ACTIONS,
    MAX_CALLBACK_ANSWER_LENGTH,
    MAX_TEXT_LENGTH,
    _explicit_entities,
    _inline_keyboard_param,
    _parse_reply_markup,
    _valid_button_url,
    _web_app_info,
)

_NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup "
    "are exactly the same as a current content and reply markup of the message"
)
_QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"
_COMMAND_RE = re.compile(r"^[a-z0-9_]{1,32}$")


class ChatMethods:
    """What the bot can do in a private chat, and the checks of its parameters."""

    @staticmethod
    def _int_param(params: dict[str, Any], name: str, missing: str) -> int:
        value = params.get(name)
        if value is None or value == "":
            raise _bad_request(missing)
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise _bad_request(f"invalid {name} specified")
        try:
            return int(value)
        except ValueError:
            raise _bad_request(f"invalid {name} specified") from None

    def _private_chat(self, params: dict[str, Any], *, sending: bool = False) -> _Chat:
        chat_id = params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise _bad_request("chat_id is empty")
        if not isinstance(chat_id, int) or chat_id not in self._chats:
            raise _bad_request("chat not found")
        chat = self._chats[chat_id]
        if sending:
            if self._users[chat_id].blocked:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
            if not chat.started:
                raise _ApiError(403, "Forbidden: bot can't initiate conversation with a user")
        return chat

    @staticmethod
    def _text_param(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None, str]:
        """Validate text/parse_mode/entities: (plain text, entities, html, parse mode)."""
        raw = params.get("text")
        raw = "" if raw is None else str(raw)
        parse_mode = str(params.get("parse_mode") or "")
        html: str | None = None
        if parse_mode.lower() == "html":
            html = raw
            text, entities = parse_html(raw)
        elif parse_mode.lower() in ("", "markdown", "markdownv2"):
            # Markdown is accepted but not interpreted by this emulator.
            text = raw
            entities = _explicit_entities(params.get("entities")) if not parse_mode else []
        else:
            raise _bad_request(f"unsupported parse_mode {parse_mode!r}")
        text, entities = _strip_text(text, entities)
        if not text:
            raise _bad_request("message text is empty")
        if _utf16_len(text) > MAX_TEXT_LENGTH:
            raise _bad_request("message is too long")
        return text, entities, html, parse_mode or None

    # ----------------------------------------------------------------- Bot API methods

    def _true(self, params: dict[str, Any], call: ApiCall) -> bool:
        return True

    def _get_me(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        return {
            **self._bot_user_json(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    @staticmethod
    def _commands_key(scope: Any, language_code: Any) -> tuple[str, str]:
        if isinstance(scope, dict):
            scope_key = json.dumps(scope, sort_keys=True)
        else:
            scope_key = json.dumps({"type": "default"})
        return scope_key, str(language_code or "")

    def _set_my_commands(self, params: dict[str, Any], call: ApiCall) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad_request("can't parse commands JSON object")
        if len(commands) > 100:
            raise _bad_request("too many commands specified")
        cleaned = []
        for command in commands:
            if not isinstance(command, dict):
                raise _bad_request("can't parse BotCommand")
            name = str(command.get("command", "")).lstrip("/")
            description = str(command.get("description", "")).strip()
            if not _COMMAND_RE.match(name):
                raise _bad_request("BOT_COMMAND_INVALID")
            if not 1 <= len(description) <= 256:
                raise _bad_request("command description must be non-empty")
            cleaned.append({"command": name, "description": description})
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        if cleaned:
            self._commands[key] = cleaned
        else:
            self._commands.pop(key, None)
        return True

    def _get_my_commands(self, params: dict[str, Any], call: ApiCall) -> list[dict]:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        return list(self._commands.get(key, []))

    def _delete_my_commands(self, params: dict[str, Any], call: ApiCall) -> bool:
        key = self._commands_key(params.get("scope"), params.get("language_code"))
        self._commands.pop(key, None)
        return True

    def _send_message(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        chat = self._private_chat(params, sending=True)
        text, entities, html, parse_mode = self._text_param(params)
        markup = _parse_reply_markup(params.get("reply_markup"))
        reply_to = self._reply_target(chat, params)
        message = _StoredMessage(
            message_id=chat.next_message_id,
            chat_id=chat.id,
            from_bot=True,
            date=int(time.time()),
            text=text,
            seq=self._next_seq(),
            entities=entities,
            html=html,
            parse_mode=parse_mode,
            inline_keyboard=markup.get("inline_keyboard") if markup else None,
            reply_to=reply_to,
        )
        if markup and "keyboard" in markup:
            chat.reply_keyboard = [[b["text"] for b in row] for row in markup["keyboard"]]
        elif markup and markup.get("remove_keyboard"):
            chat.reply_keyboard = None
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._record(chat, "bot_message", message_id=message.message_id, text=text)
        return self._message_json(message)

    def _reply_target(self, chat: _Chat, params: dict[str, Any]) -> int | None:
        reply = params.get("reply_parameters")
        allow_missing = bool(params.get("allow_sending_without_reply"))
        target = params.get("reply_to_message_id")
        if isinstance(reply, dict):
            target = reply.get("message_id")
            allow_missing = bool(reply.get("allow_sending_without_reply", allow_missing))
        if target is None:
            return None
        message = chat.messages.get(target) if isinstance(target, int) else None
        if message is None or message.deleted:
            if allow_missing:
                return None
            raise _bad_request("message to be replied not found")
        return message.message_id

    def _message_to_edit(self, params: dict[str, Any]) -> _StoredMessage:
        if params.get("inline_message_id"):
            # Inline mode is not emulated, so no inline message can exist.
            raise _bad_request("message to edit not found")
        chat = self._private_chat(params)
        message_id = self._int_param(params, "message_id", "message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad_request("message to edit not found")
        if not message.from_bot:
            raise _bad_request("message can't be edited")
        return message

    def _apply_edit(self, message: _StoredMessage, kind: str) -> dict[str, Any]:
        message.edit_date = int(time.time())
        message.version += 1
        chat = self._chats[message.chat_id]
        self._record(chat, kind, message_id=message.message_id, text=message.text)
        return self._message_json(message)

    def _edit_message_text(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        message = self._message_to_edit(params)
        if message.media is not None:
            raise _bad_request("there is no text in the message to edit")
        text, entities, html, parse_mode = self._text_param(params)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        # Quirk: an edit without reply_markup removes the message's inline keyboard.
        if (text, entities, keyboard) == (message.text, message.entities, message.inline_keyboard):
            raise _bad_request(_NOT_MODIFIED[len("Bad Request: ") :])
        message.text, message.entities, message.inline_keyboard = text, entities, keyboard
        message.html, message.parse_mode = html, parse_mode
        return self._apply_edit(message, "edit")

    def _edit_message_reply_markup(self, params: dict[str, Any], call: ApiCall) -> dict:
        message = self._message_to_edit(params)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        if keyboard == message.inline_keyboard:
            raise _bad_request(_NOT_MODIFIED[len("Bad Request: ") :])
        message.inline_keyboard = keyboard
        return self._apply_edit(message, "edit_markup")

    def _delete_message(self, params: dict[str, Any], call: ApiCall) -> bool:
        chat = self._private_chat(params)
        message_id = self._int_param(params, "message_id", "message identifier is not specified")
        message = chat.messages.get(message_id)
        if message is None or message.deleted:
            raise _bad_request("message to delete not found")
        message.deleted = True
        message.version += 1
        self._record(chat, "delete", message_id=message_id, text=message.text)
        return True

    def _answer_callback_query(self, params: dict[str, Any], call: ApiCall) -> bool:
        query_id = str(params.get("callback_query_id") or "")
        query = self._queries.get(query_id)
        if query is None or query.answered:
            raise _bad_request(_QUERY_INVALID[len("Bad Request: ") :])
        text = params.get("text")
        if text is not None and len(str(text)) > MAX_CALLBACK_ANSWER_LENGTH:
            raise _bad_request("MESSAGE_TOO_LONG")
        url = params.get("url")
        if url is not None and not _valid_button_url(str(url)):
            raise _bad_request("URL_INVALID")
        query.answered = True
        answer = CallbackAnswer(
            text=str(text) if text else None,
            show_alert=bool(params.get("show_alert")),
            url=str(url) if url else None,
            cache_time=params.get("cache_time"),
        )
        self._record(
            self._chats[query.chat_id],
            "callback_answer",
            message_id=query.message_id,
            text=answer.text,
            data={"answer": answer, "query_id": query_id},
        )
        return True

    def _set_chat_menu_button(self, params: dict[str, Any], call: ApiCall) -> bool:
        """A chat's menu button (only private chats here); without chat_id, the default."""
        button = params.get("menu_button") or {"type": "default"}
        kind = button.get("type") if isinstance(button, dict) else None
        if kind == "web_app":
            if not isinstance(button.get("text"), str) or not button["text"].strip():
                raise _bad_request("can't parse menu button: text must be non-empty")
            button = {"type": "web_app", "text": button["text"],
                      "web_app": _web_app_info(button.get("web_app"), "menu button")}
        elif kind in ("commands", "default"):
            button = {"type": kind}
        else:
            raise _bad_request("can't parse menu button: unsupported type")
        if params.get("chat_id") in (None, ""):
            self.default_menu_button = button
        else:
            self._private_chat(params).menu_button = button
        return True

    def _get_chat_menu_button(self, params: dict[str, Any], call: ApiCall) -> dict[str, Any]:
        if params.get("chat_id") in (None, ""):
            return self.default_menu_button
        return self._private_chat(params).menu_button or self.default_menu_button

    def _send_chat_action(self, params: dict[str, Any], call: ApiCall) -> bool:
        chat = self._private_chat(params, sending=True)
        action = params.get("action")
        if not action:
            raise _bad_request("action is empty")
        if action not in _CHAT_ACTIONS:
            raise _bad_request("wrong parameter action in request")
        self._record(chat, "chat_action", data={"action": action})
        return True
