"""Validation and import of order documents (docs/spec.md, "Import format"); what an entry may
hold is ``entries.py``.

A document is checked completely before anything is written: the shape and values of each entry,
then its internal consistency, then its agreement with the store. Every problem found is reported
at once (the first ``MAX_PROBLEMS``, and how many more), each naming the entry at fault. A valid
document is written in one transaction with bulk statements; importing it again changes nothing.

A file of any size imports with memory that does not grow with it (a festival: a million
tickets, 150 MB), in two phases:

1. *Read and validate*, in a worker thread, without touching the store: the file is parsed as a
   stream (``import_stream``, ijson), each entry validated on its own as it comes, and every
   valid order and ticket goes to a staging table in a private SQLite file (``import_staging``);
   events, a few dozen, stay in memory. Duplicate numbers and references are then found by
   SQLite's indexes rather than by Python sets of a million strings.
2. *Check against the store, then write*, in one write transaction (``import_writing``): a
   first pass over the staging names every conflict with the store and marks what it already
   holds; only if no problem was found at all does a second pass write.

Why a staging table rather than the alternatives: one long transaction that writes as it reads
would hold SQLite's write lock during the whole parse and could not name a duplicate before
having written its first occurrence; reading the file twice (once to check, once to write)
still needs the set of references seen to find duplicates, and parses 150 MB twice. The staging
file costs a few seconds of local writes and keeps the store's transaction to what must be in
it. A document already in memory (the HTTP API's body, bounded by its size limit) goes the same
way, its staging in memory.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ValidationError,
)
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from storage.db.store import Store
from storage.services.importing.entries import EventIn, OrderIn, described
from storage.services.importing.staging import Staging
from storage.services.importing.stream import (
    Entry,
    MalformedJson,
    bytes_entries,
    entries_of,
    file_entries,
)
from storage.services.importing.writing import (
    StagedDocument,
    Written,
    check_against_store,
    write_document,
)

MAX_DOCUMENT_BYTES = 50_000_000  # for a document in memory; files have no limit
MAX_PROBLEMS = 50
WRITE_ATTEMPTS = 3
ANALYZE_AFTER_TICKETS = 10_000

logger = logging.getLogger(__name__)


class ImportRejected(Exception):
    """A document refused as a whole; nothing of it was written. ``not_json``: its text is not
    JSON (or not I-JSON), said by its last problem; the problems before it were found first."""

    def __init__(self, problems: list[str], omitted: int = 0, *, not_json: bool = False) -> None:
        self.not_json = not_json
        self.problems = problems[:MAX_PROBLEMS]
        self.omitted = len(problems) - len(self.problems) + omitted
        super().__init__(str(self))

    def __str__(self) -> str:
        lines = list(self.problems)
        if self.omitted:
            lines.append(f"… and {self.omitted:,} more problems")
        return "\n".join(lines)


@dataclass(frozen=True)
class ImportReport:
    """What an import changed, and the order numbers the document holds (in its order; empty
    when the caller did not ask for them, as for a file of a million orders)."""

    events_created: int
    events_updated: int
    orders_created: int
    tickets_created: int
    order_numbers: tuple[str, ...]


@dataclass(frozen=True)
class Progress:
    """How far an import is, for a display: ``stage`` "reading" counts bytes of the file (no
    ``total`` for a document in memory), "checking" and "writing" count orders; ``orders`` and
    ``tickets`` are the valid ones read so far."""

    stage: str
    done: int
    total: int | None
    orders: int
    tickets: int


ProgressHook = Callable[[Progress], None]


class Problems:
    """Every problem of a document, counted; the first ``MAX_PROBLEMS`` kept to be shown."""

    def __init__(self) -> None:
        self.shown: list[str] = []
        self.count = 0

    def add(self, problem: str) -> None:
        self.count += 1
        if len(self.shown) < MAX_PROBLEMS:
            self.shown.append(problem)

    def __bool__(self) -> bool:
        return self.count > 0

    def rejected(self, *, last: str | None = None) -> ImportRejected:
        """The refusal; ``last``: why the text is not JSON, always shown, after the others."""
        if last is None:
            return ImportRejected(self.shown, omitted=self.count - len(self.shown))
        shown = self.shown[:MAX_PROBLEMS - 1]
        return ImportRejected([*shown, last], omitted=self.count - len(shown), not_json=True)


_M = TypeVar("_M", bound=BaseModel)


def _validated(model: type[_M], entry: Entry, problems: Problems) -> _M | None:
    """The entry as ``model``, or None after naming each of its problems."""
    try:
        return model.model_validate(entry.value)
    except ValidationError as error:
        for problem in described(error, entry):
            problems.add(problem)
        return None


# --- phase 1: reading, validating, staging (a worker thread) -----------------------------------


def _in_memory(document: dict[str, Any] | bytes | str, max_bytes: int,
               problem: Callable[[str], None]) -> Iterator[Entry]:
    """The entries of a document given in memory: a dict as it is, a text read by the same
    stream as a file (``stream.bytes_entries``), after checking its size."""
    if isinstance(document, dict):
        return entries_of(document, problem)
    text = document.encode("utf-8", "surrogatepass") if isinstance(document, str) else document
    if len(text) > max_bytes:
        raise ImportRejected([f"the document has {len(text):,} bytes, more than the limit of "
                              f"{max_bytes:,}"])
    return bytes_entries(text, problem)


def _stage_entries(entries: Iterable[Entry], document: StagedDocument) -> None:
    """Validate each entry as it comes; keep the valid events, stage the valid orders."""
    for entry in entries:
        if entry.section == "events":
            # Declared even by a broken entry: a ticket naming it is not "unknown", the entry
            # is merely broken (and reported as such).
            if isinstance(entry.value, dict) and isinstance(entry.value.get("id"), str):
                document.declared_event_ids.add(entry.value["id"])
            event = _validated(EventIn, entry, document.problems)
            if event is not None:
                document.events.append((entry.index, event))
            continue
        order = _validated(OrderIn, entry, document.problems)
        if order is not None:
            document.staging.add_order(
                entry.index, order.number,
                (order.buyer.name, order.buyer.email, order.buyer.language),
                [(t.ref, t.event, t.category, str(t.price)) for t in order.tickets])


def _duplicates(document: StagedDocument) -> None:
    """Event ids, order numbers and ticket refs used twice within the document."""
    problems = document.problems
    first_event: dict[str, str] = {}
    for index, event in document.events:
        where = f"events[{index}] ({event.id})"
        if event.id in first_event:
            problems.add(f'{where}.id: "{event.id}" is already used by {first_event[event.id]}')
        first_event.setdefault(event.id, where)
    for index, number, first in document.staging.repeated_numbers():
        problems.add(f'orders[{index}] ({number}).number: "{number}" is already used by '
                     f"orders[{first}] ({number})")
    for index, number, position, ref, first, first_number, first_position in (
            document.staging.repeated_refs()):
        problems.add(f'orders[{index}] ({number}).tickets[{position}] ({ref}).ref: "{ref}" is '
                     f"already used by orders[{first}] ({first_number}).tickets[{first_position}]"
                     f" ({ref})")


def _read_and_stage(source: Path | dict[str, Any] | bytes | str, max_bytes: int,
                    staging_dir: Path | None, hook: ProgressHook | None) -> StagedDocument:
    """Phase 1. Raises ``ImportRejected`` when the text is not JSON (naming what was wrong
    before it too) or the file cannot be read; other problems are left in the document."""
    document = StagedDocument(events=[], declared_event_ids=set(),
                              staging=Staging(staging_dir), problems=Problems())
    staging, problems = document.staging, document.problems
    try:
        if isinstance(source, Path):
            total = source.stat().st_size

            def on_read(done: int) -> None:
                if hook is not None:
                    hook(Progress("reading", done, total, staging.order_count,
                                  staging.ticket_count))

            entries = file_entries(source, problems.add, on_read)
        else:
            entries = _in_memory(source, max_bytes, problems.add)
        try:
            _stage_entries(entries, document)
        except MalformedJson as error:
            raise problems.rejected(last=str(error)) from None
        staging.seal()
        _duplicates(document)
    except OSError as error:
        staging.close()
        raise ImportRejected([f"{source}: cannot read the file ({error.strerror})"]) from None
    except BaseException:
        staging.close()
        raise
    return document


# --- phase 2: against the store, then writing (one transaction) --------------------------------


async def _in_thread(function: Callable, *args: Any) -> Any:
    return await asyncio.to_thread(function, *args)


def _advance(hook: ProgressHook | None, stage: str, document: StagedDocument) -> Any:
    if hook is None:
        return None
    staging = document.staging
    return lambda done, total: hook(Progress(stage, done, total, staging.order_count,
                                             staging.ticket_count))


async def _check_and_write(store: Store, document: StagedDocument, actor: str,
                           hook: ProgressHook | None) -> Written:
    async with store.write() as session:
        await check_against_store(session, document, _in_thread,
                                  _advance(hook, "checking", document))
        if document.problems:
            raise document.problems.rejected()
        return await write_document(session, document, actor, _in_thread,
                                    _advance(hook, "writing", document))


async def _write_with_retries(store: Store, document: StagedDocument, actor: str,
                              hook: ProgressHook | None) -> Written:
    for _ in range(WRITE_ATTEMPTS - 1):
        try:
            return await _check_and_write(store, document, actor, hook)
        except IntegrityError:
            # On PostgreSQL another writer may insert one of our orders between our reads and
            # writes; the import is idempotent, so checking again settles it.
            continue
    return await _check_and_write(store, document, actor, hook)


async def _refresh_statistics(store: Store) -> None:
    """Let PostgreSQL know how big the tables have grown.

    Autovacuum analyzes them only some time after a bulk load; until then the planner believes
    them small and answers every lookup by ``ref`` or ``number`` with a sequential scan."""
    try:
        async with store.engine.begin() as connection:
            await connection.execute(text("ANALYZE orders, tickets, barcodes"))
    except SQLAlchemyError:
        # The import is committed; slower lookups until autovacuum catches up are no failure.
        logger.warning("ANALYZE after a large import failed", exc_info=True)


async def _import(store: Store, source: Path | dict[str, Any] | bytes | str, *, actor: str,
                  max_bytes: int, staging_dir: Path | None, hook: ProgressHook | None,
                  list_orders: bool) -> ImportReport:
    # Parsing and validating is CPU work: keep it off the event loop.
    document = await asyncio.to_thread(_read_and_stage, source, max_bytes, staging_dir, hook)
    try:
        written = await _write_with_retries(store, document, actor, hook)
        numbers = (tuple(await asyncio.to_thread(lambda: list(document.staging.order_numbers())))
                   if list_orders else ())
    finally:
        await asyncio.to_thread(document.staging.close)
    if not store.is_sqlite and written.tickets_created >= ANALYZE_AFTER_TICKETS:
        await _refresh_statistics(store)
    return ImportReport(written.events_created, written.events_updated, written.orders_created,
                        written.tickets_created, numbers)


# --- the use cases ------------------------------------------------------------------------------


async def import_document(
    store: Store,
    document: dict[str, Any] | bytes | str,
    *,
    actor: str = "import",
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> ImportReport:
    """Check a whole order document given in memory, then write it in one transaction; refuse
    it if anything is wrong (``ImportRejected``), writing nothing. ``actor`` is recorded in the
    audit history."""
    return await _import(store, document, actor=actor, max_bytes=max_bytes, staging_dir=None,
                         hook=None, list_orders=True)


async def import_file(
    store: Store, path: Path, *, actor: str = "import", progress: ProgressHook | None = None,
    list_orders: bool = True,
) -> ImportReport:
    """Import the order document in the JSON file at ``path``, of any size, read as a stream
    (see the module's docstring); ``progress`` is called as it goes (from a worker thread while
    reading). ``list_orders`` False leaves ``order_numbers`` empty, for files too large to hold
    them."""
    with tempfile.TemporaryDirectory(prefix="ticketbot-import-") as directory:
        return await _import(store, Path(path), actor=actor, max_bytes=0,
                             staging_dir=Path(directory), hook=progress,
                             list_orders=list_orders)
