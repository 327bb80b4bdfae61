"""An order document read as a stream of entries, one event or order at a time.

A file is parsed incrementally with ijson (its C backend, yajl): only the entry being read is
ever held, so a festival's export of a million tickets needs no more memory than a small one.
A document already in memory (the HTTP API's body, a test's dict) yields its entries the same
way, so both go through one validation. Problems of the document's shape (an unknown top-level
key, a section that is not a list) are reported through ``problem`` and reading goes on;
broken JSON ends the reading with ``MalformedJson``, which says where (line and column, and the
entry it broke in), found again byte by byte after the fact so that the fast path pays nothing.

A document in memory given as text (the HTTP API's body) is read by the same stream as a file,
so both refuse alike what I-JSON (RFC 7493) refuses and JSON's grammar allows: a key given twice
in one object (``json.loads`` keeps the last, a stream would see both), a lone surrogate
(``"\\ud800"``: no character), a number too large for the parser, and nesting deeper than
``MAX_DEPTH`` — each with one line, in memory that does not grow with the input.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import ijson

SECTIONS = ("events", "orders")
READ_SIZE = 64 * 1024
_ENTRY_PREFIXES = {f"{section}.item": section for section in SECTIONS}
_KINDS = {list: "an array: ", str: "a string: ", int: "a number: ", float: "a number: "}


@dataclass(frozen=True)
class Entry:
    """One entry of a section: ``orders[index]`` is ``value`` (a dict, if well formed)."""

    section: str
    index: int
    value: Any


class MalformedJson(Exception):
    """The text is not JSON; the message says where, as far as it can tell."""


def shown(value: Any) -> str:
    """A value as JSON, clipped so one bad entry cannot flood the report."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:59] + "…"


def not_an_object(value: Any) -> str:
    return (f'the document must be a JSON object with "events" and "orders", '
            f"not {_KINDS.get(type(value), '')}{shown(value)}")


def unknown_key(key: str) -> str:
    return f'{key}: not a known key (a document has only "events" and "orders")'


# --- a document in memory ---------------------------------------------------------------------


def entries_of(document: Any, problem: Callable[[str], None]) -> Iterator[Entry]:
    """The entries of a parsed document, events first."""
    if not isinstance(document, dict):
        problem(not_an_object(document))
        return
    for key in document:
        if key not in SECTIONS:
            problem(unknown_key(key))
    for section in SECTIONS:
        entries = document.get(section, [])
        if not isinstance(entries, list):
            problem(f"{section}: must be a list (got {shown(entries)})")
            continue
        for index, value in enumerate(entries):
            yield Entry(section, index, value)


# --- a file, or the same bytes in memory --------------------------------------------------------

# How deep a document may nest. An order is five levels deep (document, orders, order, tickets,
# ticket, category by language): anything deeper is an attack on the parser, refused before it
# costs memory.
MAX_DEPTH = 32
_OVERFLOW = ("integer overflow", "numeric (floating point) overflow")
TOO_LARGE = "a number is too large (at most 18 digits, and finite)"


class _NotText(Exception):
    """What I-JSON (RFC 7493) refuses although JSON's grammar allows it: a key twice in one
    object, a lone surrogate, nesting past ``MAX_DEPTH``. ``offset``: where, when known."""

    def __init__(self, why: str, offset: int | None = None) -> None:
        super().__init__(why)
        self.offset = offset


class _CountingReader:
    """The file as ijson reads it, counting the bytes handed over (for progress, and to know
    which read held the error), and looking in each read for a lone surrogate."""

    def __init__(self, file: BinaryIO, on_read: Callable[[int], None] | None) -> None:
        self._file = file
        self._on_read = on_read
        self._surrogates = _SurrogateCheck()
        self.before_last = self.done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._file.read(size)
        self._surrogates.feed(data, self.done)
        self.before_last, self.done = self.done, self.done + len(data)
        if self._on_read is not None:
            self._on_read(self.done)
        return data


class _SurrogateCheck:
    """Finds a ``\\uD800``-style escape that is half of a pair with no other half. yajl (ijson's
    C parser) silently turns one into "?", so it is looked for in the bytes: a fast search per
    read, and a closer look only at a read that holds a surrogate escape at all."""

    _SUSPECT = re.compile(rb"\\u[dD][89a-fA-F]")
    _ESCAPE = re.compile(rb"\\u([dD][89a-fA-F][0-9a-fA-F]{2})")
    _OVERLAP = 64  # bytes of the previous read kept, for a pair cut in two by a read

    def __init__(self) -> None:
        self._tail = b""
        self._checked = 0  # escapes starting before this offset were looked at

    def feed(self, data: bytes, offset: int) -> None:
        text = self._tail + data
        start = offset - len(self._tail)
        if self._SUSPECT.search(text):
            self._look(text, start, final=not data)
        self._tail = text[-self._OVERLAP:]

    def _look(self, text: bytes, start: int, final: bool) -> None:
        for found in self._ESCAPE.finditer(text):
            at = found.start()
            if start + at < self._checked or not _is_escape(text, at):
                continue
            unit = int(found.group(1), 16)
            if unit < 0xDC00 and not final and at + 12 > len(text):
                # Its other half may be in the next read, which yajl asks for before it can
                # finish this string.
                return
            self._checked = start + at + 1
            if unit < 0xDC00:
                pair = self._ESCAPE.match(text, at + 6)
                if pair is not None and int(pair.group(1), 16) >= 0xDC00:
                    self._checked = start + at + 7
                    continue
            raise _NotText(f"\\u{found.group(1).decode()} is half of a character (a lone "
                           f"surrogate), which is not text", start + at)


def _is_escape(text: bytes, at: int) -> bool:
    """Whether the backslash at ``at`` starts an escape (is not itself escaped)."""
    before = at
    while before > 0 and text[before - 1] == ord("\\"):
        before -= 1
    return (at - before) % 2 == 0


def file_entries(path: Path, problem: Callable[[str], None],
                 on_read: Callable[[int], None] | None = None) -> Iterator[Entry]:
    """The entries of the JSON file at ``path``, in the file's order, read as a stream;
    ``on_read(bytes_so_far)`` after each read. Raises ``MalformedJson`` or ``OSError``."""
    with path.open("rb") as file:
        yield from _stream_entries(file, lambda: path.open("rb"), problem, on_read)


def bytes_entries(text: bytes, problem: Callable[[str], None]) -> Iterator[Entry]:
    """The entries of a JSON document in memory, read exactly as a file is (the same limits,
    the same messages). Raises ``MalformedJson``."""
    yield from _stream_entries(io.BytesIO(text), lambda: io.BytesIO(text), problem, None)


def _stream_entries(file: BinaryIO, reopen: Callable[[], BinaryIO],
                    problem: Callable[[str], None],
                    on_read: Callable[[int], None] | None) -> Iterator[Entry]:
    reader = _CountingReader(file, on_read)
    state = _Walk(problem)
    try:
        # basic_parse, not parse: parse's events carry their path ("orders.item.item…"), which
        # yajl builds for a whole read at once — 64 KB of "[" made gigabytes of paths.
        # use_float: numbers as json.loads gives them, so both ways validate alike.
        for event, value in ijson.basic_parse(reader, buf_size=READ_SIZE, use_float=True):
            entry = state.step(event, value)
            if entry is not None:
                yield entry
    except _NotText as refused:
        raise MalformedJson(_where_refused(reopen, state, refused)) from None
    except (ijson.JSONError, ValueError) as error:  # ValueError: bytes that are not UTF-8
        raise MalformedJson(_where_broken(reopen, reader, state, error)) from None


class _Walk:
    """Follows ijson's events through the document's two levels, builds each entry, and keeps
    the nesting and each open object's keys to refuse what I-JSON refuses."""

    def __init__(self, problem: Callable[[str], None]) -> None:
        self.problem = problem
        self.open: list[set[str] | None] = []  # each open container: its keys (an object)
        self.in_object = False  # the document is an object
        self.root_key: str | None = None  # the top-level key whose value is being read
        self.section: str | None = None  # the section whose entries are being read
        self.counts = dict.fromkeys(SECTIONS, 0)
        self.builder: ijson.ObjectBuilder | None = None
        self.last: Entry | None = None

    def step(self, event: str, value: Any) -> Entry | None:
        depth = len(self.open)  # before this event
        self._nest(event, value)
        if self.builder is not None:
            self.builder.event(event, value)
            return self._finish(self.builder.value) if len(self.open) == 2 else None
        if depth == 0:
            self.in_object = event == "start_map"
            if not self.in_object:
                self.problem(not_an_object([] if event == "start_array" else value))
            return None
        if depth == 1 and self.in_object:
            return self._top_level(event, value)
        if depth == 2 and self.section is not None:
            if event in ("start_map", "start_array"):
                self.builder = ijson.ObjectBuilder()
                self.builder.event(event, value)
                return None
            return self._finish(value) if event != "end_array" else None
        return None

    def _nest(self, event: str, value: Any) -> None:
        if event in ("start_map", "start_array"):
            if len(self.open) >= MAX_DEPTH:
                raise _NotText(f"nested too deeply (more than {MAX_DEPTH} levels)")
            self.open.append(set() if event == "start_map" else None)
        elif event in ("end_map", "end_array"):
            self.open.pop()
        elif event == "map_key":
            keys = self.open[-1]
            assert keys is not None
            if value in keys:
                key = value if len(value) <= 40 else value[:39] + "…"
                raise _NotText(f'the key "{key}" is given twice in one object')
            keys.add(value)

    def _top_level(self, event: str, value: Any) -> None:
        if event == "end_map":
            return
        if event == "map_key":
            self.root_key = value
            if value not in SECTIONS:
                self.problem(unknown_key(value))
            return
        key, self.root_key = self.root_key, None
        self.section = key if key in SECTIONS and event == "start_array" else None
        if key in SECTIONS and event != "start_array":
            got = "an object" if event == "start_map" else shown(value)
            self.problem(f"{key}: must be a list (got {got})")

    def _finish(self, value: Any) -> Entry:
        assert self.section is not None
        entry = Entry(self.section, self.counts[self.section], value)
        self.counts[self.section] += 1
        self.builder, self.last = None, entry
        return entry

    def where(self) -> str:
        """`` (in orders[12], after orders[11] (DF-1))``, or nothing before the first entry."""
        if self.section is None:
            return ""
        inside = f"{self.section}[{self.counts[self.section]}]"
        text = f" (in {inside}" if self.builder is not None else " (between entries"
        if self.last is not None:
            text += f", after {self.last.section}[{self.last.index}]{_label(self.last.value)}"
        return text + ")"


def _where_refused(reopen: Callable[[], BinaryIO], state: _Walk, refused: _NotText) -> str:
    """``not valid JSON: <why> [at line L, column C] [(in orders[12], …)]``."""
    text = f"not valid JSON: {refused}"
    if refused.offset is not None:
        line, column = _line_and_column(reopen, refused.offset)
        return text + f" at line {line}, column {column}"
    return text + state.where()


def _where_broken(reopen: Callable[[], BinaryIO], reader: _CountingReader, state: _Walk,
                  error: Exception) -> str:
    """``not valid JSON: <why> at line L, column C (in orders[12], after orders[11] (DF-1))``."""
    why = str(error).splitlines()[0] if str(error) else type(error).__name__
    why = why.removeprefix("parse error: ").removeprefix("lexical error: ").rstrip(".")
    if why in _OVERFLOW:
        why = TOO_LARGE
    elif isinstance(error, UnicodeDecodeError):
        why = "the text is not UTF-8"
    text = f"not valid JSON: {why}"
    offset = _error_offset(reopen, reader.before_last, reader.done)
    if offset is not None:
        line, column = _line_and_column(reopen, offset)
        text += f" at line {line}, column {column}"
    return text + state.where()


def _label(value: Any) -> str:
    if isinstance(value, dict):
        for key in ("id", "number"):
            if isinstance(value.get(key), str):
                return f" ({value[key][:40]})"
    return ""


def _error_offset(reopen: Callable[[], BinaryIO], start: int, end: int) -> int | None:
    """The offset of the byte the parser refused: the file is parsed again up to the read that
    failed, then that read byte by byte. Only a refused file pays for it."""
    parser = ijson.basic_parse_coro(_sink())
    offset = 0
    try:
        with reopen() as file:
            while offset < start:
                chunk = file.read(min(READ_SIZE, start - offset))
                if not chunk:
                    return None
                parser.send(chunk)
                offset += len(chunk)
            while offset < end and (byte := file.read(1)):
                parser.send(byte)
                offset += 1
            parser.close()  # the text ended too early: the error is at its end
    # SystemError: ijson's C backend, fed a number byte by byte until it overflows, raises it
    # (ijson 3.x) where it means its overflow error.
    except (ijson.JSONError, ValueError, SystemError):
        return offset
    except OSError:
        return None
    return None


def _sink() -> Any:
    def sink() -> Any:
        while True:
            yield
    coroutine = sink()
    next(coroutine)
    return coroutine


def _line_and_column(reopen: Callable[[], BinaryIO], offset: int) -> tuple[int, int]:
    """1-based line and column (in characters) of the byte at ``offset``."""
    line, line_start, done = 1, 0, 0
    with reopen() as file:
        while done < offset:
            chunk = file.read(min(READ_SIZE * 16, offset - done))
            if not chunk:
                break
            newlines = chunk.count(b"\n")
            if newlines:
                line += newlines
                line_start = done + chunk.rindex(b"\n") + 1
            done += len(chunk)
        file.seek(line_start)
        before = file.read(offset - line_start)
    return line, len(before.decode("utf-8", errors="replace")) + 1
