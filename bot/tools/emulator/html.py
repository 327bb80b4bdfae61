"""The Telegram HTML parse mode: Bot API HTML into plain text plus MessageEntity dicts.

Telegram's dialect, not a browser's: only its tags, only four named entities, offsets in UTF-16
code units, and Telegram's own "can't parse entities" errors for anything else.
"""

from __future__ import annotations

import bisect
import re
from html.parser import HTMLParser
from typing import Any

from bot.tools.emulator.errors import _bad_request, _utf16_len


class _EntityParseError(Exception):
    pass


# Telegram understands only these four named entities plus numeric ones; any other "&" is
# kept literally (so "&nbsp;" stays "&nbsp;", unlike in a browser).
_TELEGRAM_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#[0-9]+|#[xX][0-9a-fA-F]+);")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}
_SIMPLE_TAGS = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "code": "code",
    "pre": "pre",
}
_SUPPORTED_TAGS = frozenset(_SIMPLE_TAGS) | {"a", "span", "blockquote", "tg-emoji"}


class _TelegramHtml(HTMLParser):
    """Parses Bot API HTML into plain text plus MessageEntity dicts (UTF-16 offsets)."""

    def __init__(self, source: str):
        super().__init__(convert_charrefs=False)
        self._source = source
        # Escape every "&" Telegram would not decode, remembering where the 4 extra characters
        # went so that error offsets still refer to the original text.
        parts: list[str] = []
        self._inserted: list[int] = []
        last = 0
        length = 0
        for match in re.finditer("&", source):
            if _TELEGRAM_ENTITY_RE.match(source, match.start()):
                continue
            chunk = source[last : match.end()]
            parts.append(chunk)
            length += len(chunk)
            self._inserted.append(length)
            parts.append("amp;")
            length += 4
            last = match.end()
        parts.append(source[last:])
        self._processed = "".join(parts)
        self._line_starts = [0] + [m.end() for m in re.finditer("\n", self._processed)]
        self._text: list[str] = []
        self._pos = 0  # UTF-16 offset of the end of the plain text so far
        self._stack: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[dict[str, Any]] = []

    def run(self) -> str:
        self.feed(self._processed)
        self.close()
        if self._stack:
            raise _EntityParseError(
                f'Can\'t find end tag corresponding to start tag "{self._stack[-1][0]}"'
            )
        return "".join(self._text)

    def _byte_offset(self, extra_chars: int = 0) -> int:
        line, col = self.getpos()
        index = self._line_starts[line - 1] + col + extra_chars
        index -= 4 * bisect.bisect_right(self._inserted, index)
        return len(self._source[:index].encode())

    def _append(self, text: str) -> None:
        self._text.append(text)
        self._pos += _utf16_len(text)

    def handle_data(self, data: str) -> None:
        if "<" in data:
            # html.parser passes a stray "<" on as text; Telegram rejects it.
            index = data.index("<")
            offset = self._byte_offset(index)
            if re.match(r"</?[A-Za-z]", data[index:]):
                raise _EntityParseError(f"Unclosed start tag at byte offset {offset}")
            raise _EntityParseError(f'Unsupported start tag "" at byte offset {offset}')
        self._append(data)

    def handle_entityref(self, name: str) -> None:
        self._append(_NAMED_ENTITIES[name])

    def handle_charref(self, name: str) -> None:
        code = int(name[1:], 16) if name[:1] in "xX" else int(name)
        if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF or code == 0:
            code = 0xFFFD
        self._append(chr(code))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        offset = self._byte_offset()
        if tag not in _SUPPORTED_TAGS:
            raise _EntityParseError(f'Unsupported start tag "{tag}" at byte offset {offset}')
        attributes = dict(attrs)
        if tag == "span" and attributes.get("class") != "tg-spoiler":
            raise _EntityParseError(
                f'Tag "span" must have class "tg-spoiler" at byte offset {offset}'
            )
        if tag == "tg-emoji" and not attributes.get("emoji-id"):
            raise _EntityParseError(
                f'Tag "tg-emoji" must have attribute "emoji-id" at byte offset {offset}'
            )
        self._stack.append((tag, self._pos, attributes))

    def handle_endtag(self, tag: str) -> None:
        offset = self._byte_offset()
        if not self._stack:
            raise _EntityParseError(f"Unexpected end tag at byte offset {offset}")
        open_tag, start, attributes = self._stack.pop()
        if open_tag != tag:
            raise _EntityParseError(
                f'Unmatched end tag at byte offset {offset}, expected "</{open_tag}>", '
                f'found "</{tag}>"'
            )
        self._add_entity(tag, start, attributes)

    def _add_entity(self, tag: str, start: int, attributes: dict[str, str | None]) -> None:
        length = self._pos - start
        if tag == "code" and self._stack and self._stack[-1][0] == "pre":
            # <pre><code class="language-x"> yields one pre entity with a language.
            css = attributes.get("class") or ""
            if css.startswith("language-") and self._stack[-1][1] == start:
                self._stack[-1][2]["__language"] = css[len("language-") :]
                return
        entity: dict[str, Any]
        if tag in _SIMPLE_TAGS:
            entity = {"type": _SIMPLE_TAGS[tag]}
            if tag == "pre" and attributes.get("__language"):
                entity["language"] = attributes["__language"]
        elif tag == "span":
            entity = {"type": "spoiler"}
        elif tag == "blockquote":
            expandable = "expandable" in attributes
            entity = {"type": "expandable_blockquote" if expandable else "blockquote"}
        elif tag == "tg-emoji":
            entity = {"type": "custom_emoji", "custom_emoji_id": attributes["emoji-id"]}
        else:  # "a"
            href = attributes.get("href")
            if not href:
                return  # Telegram silently drops links without a target
            entity = {"type": "text_link", "url": href}
        if length > 0:
            entity = {"offset": start, "length": length, **entity}
            self.entities.append(entity)

    def handle_comment(self, data: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "!--" at byte offset {self._byte_offset()}')

    def handle_decl(self, decl: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "!" at byte offset {self._byte_offset()}')

    def handle_pi(self, data: str) -> None:
        raise _EntityParseError(f'Unsupported start tag "?" at byte offset {self._byte_offset()}')

    def unknown_decl(self, data: str) -> None:
        self.handle_decl(data)


def parse_html(source: str) -> tuple[str, list[dict[str, Any]]]:
    """Parse Bot API HTML into ``(plain_text, entities)``; raises a 400 :class:`_ApiError`."""
    parser = _TelegramHtml(source)
    try:
        text = parser.run()
    except _EntityParseError as exc:
        raise _bad_request(f"can't parse entities: {exc}") from None
    return text, sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))


def _strip_text(text: str, entities: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """Telegram trims leading/trailing whitespace of message texts and shifts entities."""
    stripped_left = text.lstrip()
    shift = _utf16_len(text) - _utf16_len(stripped_left)
    result = stripped_left.rstrip()
    limit = _utf16_len(result)
    out = []
    for entity in entities:
        start = max(entity["offset"] - shift, 0)
        end = min(entity["offset"] + entity["length"] - shift, limit)
        if end > start:
            out.append({**entity, "offset": start, "length": end - start})
    return result, out
