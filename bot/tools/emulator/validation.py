"""Checks of request parameters the way the Bot API makes them: Telegram's limits, reply
markups and inline keyboards (one action per button, callback data size, button URLs, Web App
infos) and explicit entities, each refused with Telegram's own error text."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from bot.tools.emulator.errors import _bad_request

MAX_TEXT_LENGTH = 4096  # UTF-16 code units, counted after entity parsing
MAX_CALLBACK_DATA_BYTES = 64
MAX_INLINE_BUTTONS = 100
MAX_CALLBACK_ANSWER_LENGTH = 200

# Inline keyboard button fields that give a button its action; Telegram wants exactly one.
_BUTTON_ACTIONS = (
    "callback_data",
    "url",
    "web_app",
    "login_url",
    "switch_inline_query",
    "switch_inline_query_current_chat",
    "switch_inline_query_chosen_chat",
    "copy_text",
    "callback_game",
    "pay",
)

_CHAT_ACTIONS = frozenset(
    {
        "typing",
        "upload_photo",
        "record_video",
        "upload_video",
        "record_voice",
        "upload_voice",
        "upload_document",
        "choose_sticker",
        "find_location",
        "record_video_note",
        "upload_video_note",
    }
)


def _explicit_entities(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise _bad_request("can't parse entities JSON object")
    entities = []
    for entity in value:
        if not (
            isinstance(entity, dict)
            and isinstance(entity.get("type"), str)
            and isinstance(entity.get("offset"), int)
            and isinstance(entity.get("length"), int)
        ):
            raise _bad_request("can't parse MessageEntity")
        if entity["length"] > 0 and entity["offset"] >= 0:
            entities.append(dict(entity))
    return sorted(entities, key=lambda e: (e["offset"], -e["length"]))


def _web_app_info(value: Any, where: str) -> dict[str, Any]:
    """A WebAppInfo as Telegram takes it: an object whose url is HTTPS."""
    url = value.get("url") if isinstance(value, dict) else None
    if not isinstance(url, str) or not url:
        raise _bad_request(f"can't parse {where}: Web App URL must be non-empty")
    parts = urlsplit(url.strip())
    if parts.scheme.lower() != "https" or not parts.hostname:
        raise _bad_request(f"{where} Web App URL '{url}' is invalid: Only HTTPS links are allowed")
    return {"url": url}


def _valid_button_url(url: str) -> bool:
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme in ("http", "https"):
        return bool(parts.hostname)
    return scheme == "tg" and len(url) > len("tg://")


def _parse_reply_markup(value: Any) -> dict[str, Any] | None:
    """Validate a reply_markup the way the Bot API does; inline keyboards are normalised."""
    if value is None or value == "":
        return None
    if not isinstance(value, dict):
        raise _bad_request("can't parse reply keyboard markup JSON object")
    if "inline_keyboard" in value:
        keyboard = _validate_inline_keyboard(value["inline_keyboard"])
        return {"inline_keyboard": keyboard} if keyboard else {}
    if "keyboard" in value:
        rows = value["keyboard"]
        if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
            raise _bad_request('field "keyboard" of the ReplyKeyboardMarkup must be an Array')
        normalised = [[b if isinstance(b, dict) else {"text": str(b)} for b in row] for row in rows]
        if any(not str(b.get("text", "")) for row in normalised for b in row):
            raise _bad_request("keyboard button text is empty")
        return {"keyboard": normalised}
    if value.get("remove_keyboard") or value.get("force_reply"):
        return dict(value)
    raise _bad_request("can't parse reply keyboard markup JSON object")


def _inline_keyboard_param(value: Any) -> list[list[dict[str, Any]]] | None:
    """The inline keyboard of an edit request (edits accept only inline keyboards)."""
    markup = _parse_reply_markup(value)
    if markup and "inline_keyboard" not in markup:
        raise _bad_request("inline keyboard expected")
    return markup.get("inline_keyboard") if markup else None


def _validate_inline_keyboard(rows: Any) -> list[list[dict[str, Any]]]:
    if not isinstance(rows, list) or not all(isinstance(row, list) for row in rows):
        raise _bad_request('field "inline_keyboard" of the InlineKeyboardMarkup must be an Array')
    if sum(len(row) for row in rows) > MAX_INLINE_BUTTONS:
        raise _bad_request("reply markup is too long")
    keyboard = []
    for row in rows:
        buttons = []
        for button in row:
            if not isinstance(button, dict) or not isinstance(button.get("text"), str):
                raise _bad_request("can't parse inline keyboard button: Text must be a String")
            if not button["text"].strip():
                raise _bad_request("BUTTON_TEXT_INVALID")
            actions = [name for name in _BUTTON_ACTIONS if button.get(name) is not None]
            if not actions:
                raise _bad_request("text buttons are unallowed in the inline keyboard")
            if len(actions) > 1:
                raise _bad_request(
                    "can't parse inline keyboard button: exactly one of the optional fields "
                    "must be used"
                )
            data = button.get("callback_data")
            if data is not None and (
                not isinstance(data, str) or not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES
            ):
                raise _bad_request("BUTTON_DATA_INVALID")
            url = button.get("url")
            if url is not None and (not isinstance(url, str) or not _valid_button_url(url)):
                raise _bad_request("BUTTON_URL_INVALID")
            if button.get("web_app") is not None:
                _web_app_info(button["web_app"], "inline keyboard button")
            buttons.append(dict(button))
        if buttons:
            keyboard.append(buttons)
    return keyboard
