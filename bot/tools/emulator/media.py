"""Pictures and documents for the Bot API emulator: ``sendPhoto``, ``sendDocument``,
``editMessageMedia``, ``editMessageCaption`` and ``getFile``, as Telegram does them.

- A file is either uploaded (multipart/form-data: the file in the field named after the
  parameter, or, inside ``InputMedia``, ``attach://<name>`` pointing at a field) or named by a
  ``file_id`` Telegram gave earlier. Every upload gets a new ``file_id``; the same bytes keep one
  ``file_unique_id``. An unknown ``file_id`` is refused with Telegram's own error text.
- Messages carry a caption (up to 1024 characters, HTML like texts) instead of a text, and
  ``photo`` (a list of sizes, largest last) or ``document`` in their JSON.
- Editing: ``editMessageMedia`` replaces the media and caption (and, as with texts, removes the
  inline keyboard unless one is given); ``editMessageCaption`` changes the caption only.
  ``editMessageText`` of a media message is refused as Telegram refuses it.
- Tests read what the bot uploaded with :meth:`MediaStore.content` (a ``file_id``'s bytes) or
  ``ChatMessage.media``.
"""

from __future__ import annotations

import hashlib
import itertools
import struct
import time
from dataclasses import dataclass
from typing import Any

from aiohttp.web_request import FileField

from bot.tools.emulator.errors import _bad_request, _utf16_len
from bot.tools.emulator.html import _strip_text, parse_html
from bot.tools.emulator.records import ApiCall, _StoredMessage
from bot.tools.emulator.validation import (
    _explicit_entities,
    _inline_keyboard_param,
    _parse_reply_markup,
)

MAX_CAPTION_LENGTH = 1024
REACTING_METHODS = ("sendPhoto", "sendDocument", "editMessageMedia", "editMessageCaption")
_WRONG_FILE = "wrong file identifier/HTTP URL specified"


@dataclass(frozen=True)
class Upload:
    """A file part of a multipart request."""

    filename: str
    content_type: str
    data: bytes


@dataclass(frozen=True)
class StoredFile:
    file_id: str
    file_unique_id: str
    data: bytes
    filename: str
    mime_type: str


def read_upload(field: FileField) -> Upload:
    return Upload(field.filename or "file", field.content_type or "application/octet-stream",
                  field.file.read())


def _png_size(data: bytes) -> tuple[int, int]:
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return struct.unpack(">II", data[16:24])
    return (320, 320)


class MediaStore:
    """The files the bot has uploaded, by ``file_id``."""

    def __init__(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._counter = itertools.count(1)

    def add(self, upload: Upload, kind: str) -> StoredFile:
        unique = "AQAD" + hashlib.sha256(upload.data).hexdigest()[:16]
        file_id = f"{kind[:2].upper()}{next(self._counter):06d}-{unique}"
        stored = StoredFile(file_id, unique, upload.data, upload.filename, upload.content_type)
        self._files[file_id] = stored
        return stored

    def get(self, file_id: str) -> StoredFile | None:
        return self._files.get(file_id)

    def content(self, file_id: str) -> bytes:
        """The bytes behind a ``file_id`` (what a client downloads with getFile)."""
        stored = self._files.get(file_id)
        if stored is None:
            raise KeyError(f"no file {file_id!r} was uploaded")
        return stored.data

    @property
    def uploads(self) -> int:
        """How many files were uploaded (each sending by file_id uploads nothing)."""
        return len(self._files)


def media_json(message: _StoredMessage) -> dict[str, Any]:
    """The media part of a message's JSON: ``photo`` or ``document``, and the caption."""
    media = message.media or {}
    data: dict[str, Any] = {}
    if media.get("type") == "photo":
        width, height = media["width"], media["height"]
        small = max(1, 90 * width // max(width, height))
        data["photo"] = [
            {"file_id": media["file_id"] + "-s", "file_unique_id": media["file_unique_id"] + "s",
             "width": small, "height": small * height // max(width, 1), "file_size": 1000},
            {"file_id": media["file_id"], "file_unique_id": media["file_unique_id"],
             "width": width, "height": height, "file_size": media["file_size"]},
        ]
    elif media.get("type") == "document":
        data["document"] = {"file_id": media["file_id"],
                            "file_unique_id": media["file_unique_id"],
                            "file_name": media["file_name"], "mime_type": media["mime_type"],
                            "file_size": media["file_size"]}
    if message.text:
        data["caption"] = message.text
        if message.entities:
            data["caption_entities"] = message.entities
    return data


# --- the methods ---------------------------------------------------------------------------------


def _media_fields(stored: StoredFile, kind: str) -> dict[str, Any]:
    fields = {"type": kind, "file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
              "file_size": len(stored.data)}
    if kind == "photo":
        fields["width"], fields["height"] = _png_size(stored.data)
    else:
        fields.update(file_name=stored.filename, mime_type=stored.mime_type)
    return fields


def _caption(params: dict[str, Any]) -> tuple[str, list[dict[str, Any]], str | None, str | None]:
    raw = params.get("caption")
    raw = "" if raw is None else str(raw)
    parse_mode = str(params.get("parse_mode") or "")
    html = None
    if parse_mode.lower() == "html":
        html = raw
        text, entities = parse_html(raw)
    else:
        text, entities = raw, _explicit_entities(params.get("caption_entities"))
    text, entities = _strip_text(text, entities)
    if _utf16_len(text) > MAX_CAPTION_LENGTH:
        raise _bad_request("message caption is too long")
    return text, entities, html, parse_mode or None


def _uploads(params: dict[str, Any]) -> dict[str, Upload]:
    return {key: value for key, value in params.items() if isinstance(value, Upload)}


_NOT_MODIFIED = ("message is not modified: specified new message content and reply markup are "
                 "exactly the same as a current content and reply markup of the message")


class MediaMethods:
    """The media methods, mixed into the emulator's server as
    :class:`~bot.tools.emulator.methods.ChatMethods` is; they use its chats through the same
    ``self`` and keep the uploaded files in ``self.media``."""

    media: MediaStore

    def _media_methods(self) -> dict[str, Any]:
        """The Bot API methods this mixin answers, by name."""
        return {
            "sendPhoto": lambda params, call: self._send_media(params, "photo"),
            "sendDocument": lambda params, call: self._send_media(params, "document"),
            "editMessageMedia": self._edit_media,
            "editMessageCaption": self._edit_caption,
            "getFile": self._get_file,
        }

    def _file(self, value: Any, uploads: dict[str, Upload], kind: str) -> StoredFile:
        """The file a parameter names: an upload, an ``attach://`` part, or a known file_id."""
        if isinstance(value, Upload):
            return self.media.add(value, kind)
        if isinstance(value, str) and value.startswith("attach://"):
            upload = uploads.get(value[len("attach://"):])
            if upload is None:
                raise _bad_request("can't find attached file")
            return self.media.add(upload, kind)
        if isinstance(value, str) and value:
            stored = self.media.get(value.removesuffix("-s"))
            if stored is None:
                raise _bad_request(_WRONG_FILE)
            return stored
        raise _bad_request(f"there is no {kind} in the request")

    def _send_media(self, params: dict[str, Any], kind: str) -> dict[str, Any]:
        chat = self._private_chat(params, sending=True)
        stored = self._file(params.get(kind), _uploads(params), kind)
        text, entities, html, parse_mode = _caption(params)
        markup = _parse_reply_markup(params.get("reply_markup"))
        message = _StoredMessage(
            message_id=chat.next_message_id, chat_id=chat.id, from_bot=True,
            date=int(time.time()), text=text, seq=self._next_seq(), entities=entities,
            html=html, parse_mode=parse_mode,
            inline_keyboard=markup.get("inline_keyboard") if markup else None,
            media=_media_fields(stored, kind),
        )
        chat.next_message_id += 1
        chat.messages[message.message_id] = message
        self._record(chat, "bot_message", message_id=message.message_id, text=text,
                     data={"media": dict(message.media)})
        return self._message_json(message)

    def _edit_media(self, params: dict[str, Any], call: ApiCall) -> dict:
        message = self._message_to_edit(params)
        if not message.media:
            raise _bad_request("there is no media in the message to edit")
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "document"):
            raise _bad_request("can't parse InputMedia: media is not an object")
        kind = media["type"]
        stored = self._file(media.get("media"), _uploads(params), kind)
        text, entities, html, parse_mode = _caption(media)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        fields = _media_fields(stored, kind)
        if (fields["file_unique_id"], text, keyboard) == (
                message.media.get("file_unique_id"), message.text, message.inline_keyboard):
            raise _bad_request(_NOT_MODIFIED)
        message.media = fields
        message.text, message.entities, message.html, message.parse_mode = (
            text, entities, html, parse_mode)
        message.inline_keyboard = keyboard  # none given: the keyboard goes, as with texts
        return self._apply_edit(message, "edit_media")

    def _edit_caption(self, params: dict[str, Any], call: ApiCall) -> dict:
        message = self._message_to_edit(params)
        if not message.media:
            raise _bad_request("there is no caption in the message to edit")
        text, entities, html, parse_mode = _caption(params)
        keyboard = _inline_keyboard_param(params.get("reply_markup"))
        if (text, entities, keyboard) == (message.text, message.entities,
                                          message.inline_keyboard):
            raise _bad_request(_NOT_MODIFIED)
        message.text, message.entities, message.html, message.parse_mode = (
            text, entities, html, parse_mode)
        message.inline_keyboard = keyboard
        return self._apply_edit(message, "edit_caption")

    def _get_file(self, params: dict[str, Any], call: ApiCall) -> dict:
        stored = self.media.get(str(params.get("file_id") or "").removesuffix("-s"))
        if stored is None:
            raise _bad_request(_WRONG_FILE)
        return {"file_id": stored.file_id, "file_unique_id": stored.file_unique_id,
                "file_size": len(stored.data), "file_path": f"files/{stored.file_id}"}
