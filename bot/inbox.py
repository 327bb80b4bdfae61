"""Durable delivery of Telegram updates: nothing lost, nothing applied twice.

python-telegram-bot's long polling confirms a batch to Telegram (by the offset of the next
``getUpdates``) before its updates are handled, so a crash would lose them. Here every update is
first written to the store's inbox (``storage/inbox.py``), and only then confirmed:
``DurableBot.get_updates`` stores each batch before returning it to the updater, and in
webhook mode ``receive_update`` stores the update before the server answers 200.

``InboxProcessor`` then claims each entry in its chat's turn and runs the handlers with
``storage.applying`` set, so the update's deciding transaction marks it done together with its
effects; an update that wrote nothing decisive is marked done after its handlers. Handlers that
fail for a temporary reason (the store or Telegram unreachable) leave the entry to be retried
later. ``InboxKeeper`` replays unfinished entries at start-up and whenever a lease runs out,
and forgets old done entries.

The guarantee: every update is handled until it is done. The effects of its deciding
transaction are applied exactly once. Idempotent bookkeeping (a user's language, a chat's input
step) may be written again on a replay. Answers in the chat are sent at least once for updates
that decided nothing; for one whose deciding transaction committed, a crash or outage between
the commit and the answer loses the answer, never the effect.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from telegram import Update
from telegram.error import BadRequest, NetworkError, RetryAfter, TimedOut
from telegram.ext import Application, ApplicationHandlerStop, BaseUpdateProcessor, ExtBot

from bot.telegram_retry import is_temporary_telegram_error
from bot.unread_fields import trim_answer, trim_update
from bot.update_processor import DEFAULT_MAX_RUNNING, ChatOrderedProcessor
from conversations.common import sent_message_ignored
from storage import tokens
from storage.applying import AlreadyApplied, Applying, applying
from storage.applying import current as applying_now
from storage.db.store import Store
from storage.inbox import DEFAULT_GRACE, DEFAULT_LEASE, Claim, Inbox, Incoming

log = logging.getLogger(__name__)

DELIVERY = "delivery"  # its key in bot_data
MAX_ATTEMPTS = 8
# How long a claim lasts, how long a fresh entry is left to its receiver, how often to sweep.
# Read when a Delivery or InboxKeeper is made, so that a test may shorten them.
LEASE = DEFAULT_LEASE
GRACE = DEFAULT_GRACE
SWEEP_INTERVAL = 1.0
# An update this process stored but could not claim (another process is handling an earlier
# one of its chat, most likely) is tried again after these pauses, before the sweeps take over.
CLAIM_RETRIES = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)
PRUNE_INTERVAL = dt.timedelta(minutes=10)


# "/start PARAMETER" as Telegram sends a deep link (the bot's name may follow the command).
_START_WITH_PARAMETER = re.compile(r"^(/start(?:@\w+)?\s+)(\S+)(.*)$", re.DOTALL)


def without_link_token(payload: dict[str, Any], secret: bytes) -> dict[str, Any] | None:
    """The update's JSON with its ``/start`` parameter replaced by its marker
    (``storage.tokens.start_marker``), or None if it has none: a buyer's link never expires,
    so it must not sit in the inbox in clear. The same update always gets the same marker."""
    message = payload.get("message")
    if not isinstance(message, dict) or not isinstance(message.get("text"), str):
        return None
    found = _START_WITH_PARAMETER.match(message["text"])
    if found is None:
        return None
    text = found.group(1) + tokens.start_marker(secret, found.group(2)) + found.group(3)
    return {**payload, "message": {**message, "text": text}}


def _entry_without_token(update: Update, payload: dict[str, Any] | None,
                         secret: bytes) -> tuple[Incoming, Update]:
    """The inbox entry of an update, and the update to handle: itself, or as stored if its
    ``/start`` parameter was replaced by a marker."""
    marked = without_link_token(payload or update.to_dict(), secret)
    if marked is None:
        return incoming(update, payload), update
    update = Update.de_json(marked, update.get_bot())
    return incoming(update, marked), update


def incoming(update: Update, payload: dict[str, Any] | None = None) -> Incoming:
    """What the inbox keeps of an update: its id, its chat (for ordering), its JSON (as
    Telegram sent it, when given, else rebuilt from the update)."""
    chat = update.effective_chat
    user = update.effective_user
    chat_id = chat.id if chat is not None else (user.id if user is not None else None)
    return Incoming(update.update_id, chat_id, payload or update.to_dict())


def is_temporary_store_error(error: BaseException) -> bool:
    """The database unreachable, restarting, dropping connections or busy: worth a retry."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, OperationalError | InterfaceError | PoolTimeout | OSError)


def is_temporary(error: BaseException) -> bool:
    return (is_temporary_store_error(error) or is_temporary_telegram_error(error)
            or isinstance(error, RetryAfter))


def retry_pause(attempt: int) -> dt.timedelta:
    """1 s after the first failed attempt, then 2, 4 … at most a minute."""
    return dt.timedelta(seconds=min(60, 2 ** max(attempt - 1, 0)))


class _Streak:
    """Log the first failure of a run of failures, and the recovery, not every retry."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.failures = 0

    def failed(self, error: BaseException) -> float:
        self.failures += 1
        if self.failures == 1:
            log.warning("%s unavailable (%s); retrying", self.what, type(error).__name__)
        return min(15.0, 0.5 * 2 ** (self.failures - 1))

    def succeeded(self) -> None:
        if self.failures:
            log.info("%s available again after %d failed tries", self.what, self.failures)
            self.failures = 0


class Delivery:
    """The inbox of one application, and what this process is handling of it."""

    def __init__(self, store: Store, *, lease: dt.timedelta | None = None,
                 grace: dt.timedelta | None = None, max_attempts: int = MAX_ATTEMPTS) -> None:
        self.lease = lease or LEASE
        self.inbox = Inbox(store, lease=self.lease, grace=grace or GRACE)
        self.max_attempts = max_attempts
        # update_id -> monotonic deadline: queued here, so sweeps need not queue it again.
        # Bounded by the updates in flight; a forgotten entry simply expires.
        self._queued: dict[int, float] = {}
        # update_id -> (claim, monotonic time it was taken or renewed): handled here now.
        self._in_flight: dict[int, tuple[Claim, float]] = {}
        self._claim_tries: dict[int, int] = {}  # update_id -> failed claims so far
        self._retry_handles: set[asyncio.TimerHandle] = set()
        self.application: Application | None = None

    def note_queued(self, update_ids: Sequence[int]) -> None:
        deadline = time.monotonic() + self.lease.total_seconds()
        for update_id in update_ids:
            self._queued[update_id] = deadline

    def queued(self) -> list[int]:
        now = time.monotonic()
        for update_id in [u for u, deadline in self._queued.items() if deadline <= now]:
            del self._queued[update_id]
        return list(self._queued)

    async def record(self, updates: Sequence[Update],
                     payloads: dict[int, dict[str, Any]] | None = None) -> list[Update]:
        """Store updates before Telegram is told they arrived; ``payloads`` are their JSON as
        received, by update id. Returns the updates to handle: an update with a ``/start``
        parameter is handled as stored, with its marker (``without_link_token``)."""
        payloads = payloads or {}
        secret = await self.inbox.store.secret()
        entries, handed = [], []
        for update in updates:
            entry, update = _entry_without_token(update, payloads.get(update.update_id), secret)
            entries.append(entry)
            handed.append(update)
        with self.inbox.store.short_statements():
            await self.inbox.record(entries)
        self.note_queued([update.update_id for update in updates])
        return handed

    async def handle(self, update: Update, coroutine: Awaitable[Any],
                     run: Callable[[object, Awaitable[Any]], Awaitable[None]]) -> None:
        """Claim the update, run its handlers (``run``), and settle its inbox entry. A reply's
        statements are short: on SQLite they run on the loop's thread (``Store.short_statements``;
        staff reports say otherwise for theirs)."""
        with self.inbox.store.short_statements():
            await self._handle(update, coroutine, run)

    async def _handle(self, update: Update, coroutine: Awaitable[Any],
                      run: Callable[[object, Awaitable[Any]], Awaitable[None]]) -> None:
        self._forget_persistence_marks()
        stored = self._queued.pop(update.update_id, None) is not None
        claim = await self._claim(update, stored=stored)
        if claim is None:
            coroutine.close()  # handled already, elsewhere, or after an earlier one of its chat
            if stored and not await self._done(update.update_id):
                self._claim_again_soon(update)
            return
        self._claim_tries.pop(update.update_id, None)
        self._in_flight[update.update_id] = (claim, time.monotonic())
        try:
            entry = Applying(update.update_id, attempt=claim.attempt)
            with applying(entry):
                await run(update, coroutine)
            await self._settle(entry, claim)
        finally:
            self._in_flight.pop(update.update_id, None)

    async def _done(self, update_id: int) -> bool:
        try:
            return await self.inbox.is_done(update_id)
        except SQLAlchemyError:
            return True  # the sweeps will see to it

    def _claim_again_soon(self, update: Update) -> None:
        """Another process may be handling an earlier update of this chat (behind one webhook
        URL, a chat's next update can reach any process): try again shortly rather than
        leave it to the sweeps, which wait for the grace time."""
        tries = self._claim_tries.get(update.update_id, 0)
        application = self.application
        if tries >= len(CLAIM_RETRIES) or application is None or not application.running:
            self._claim_tries.pop(update.update_id, None)
            return
        self._claim_tries[update.update_id] = tries + 1

        def queue_again() -> None:
            self._retry_handles.discard(handle)
            if application.running:
                self.note_queued([update.update_id])
                application.update_queue.put_nowait(update)

        handle = asyncio.get_running_loop().call_later(CLAIM_RETRIES[tries], queue_again)
        self._retry_handles.add(handle)

    def cancel_claim_retries(self) -> None:
        for handle in self._retry_handles:
            handle.cancel()
        self._retry_handles.clear()
        self._claim_tries.clear()

    async def renew_leases(self) -> int:
        """Extend the leases of updates handled here for a third of a lease or more, so that
        a slow update is not taken over while this process is alive; returns how many."""
        now = time.monotonic()
        due = [claim for claim, since in self._in_flight.values()
               if now - since >= self.lease.total_seconds() / 3]
        if due:
            await self.inbox.renew(due)
            for claim in due:
                if claim.update_id in self._in_flight:
                    self._in_flight[claim.update_id] = (claim, now)
        return len(due)

    async def _claim(self, update: Update, *, stored: bool) -> Claim | None:
        try:
            if not stored:
                # Queued by a path that did not store it first (or stored long ago; storing
                # again changes nothing): it is at least handled the same way from here on.
                secret = await self.inbox.store.secret()
                await self.inbox.record([_entry_without_token(update, None, secret)[0]])
            claim = await self.inbox.claim(update.update_id)
            if claim is not None and claim.attempt > self.max_attempts:
                log.warning("update %s dropped after %d attempts", update.update_id,
                            claim.attempt - 1)
                await self.inbox.finish(update.update_id)
                return None
        except SQLAlchemyError as error:
            log.warning("update %s left for later: store unavailable (%s)", update.update_id,
                        type(error).__name__)
            return None
        return claim

    async def _settle(self, entry: Applying, claim: Claim) -> None:
        try:
            if entry.failed_transiently and not entry.marked_done:
                await self.inbox.retry_later(claim, retry_pause(claim.attempt))
            else:
                await self.inbox.finish(entry.update_id)
        except SQLAlchemyError as error:
            # The lease runs out and the update is handled again; only bookkeeping repeats.
            log.warning("update %s not marked done (%s); it will be replayed",
                        entry.update_id, type(error).__name__)

    def _forget_persistence_marks(self) -> None:
        # PTB notes the chat and user of every update it finished for its persistence, and
        # only a persistence ever empties those sets; we have none, so they would grow with
        # every chat served. Emptied before each update, they hold only the latest few.
        application = self.application
        if application is not None and application.persistence is None:
            application._chat_ids_to_be_updated_in_persistence.clear()
            application._user_ids_to_be_updated_in_persistence.clear()

    async def replay(self, *, fresh_too: bool = False) -> int:
        """Queue the unfinished entries that may be claimed now; returns how many."""
        application = self.application
        assert application is not None
        due = await self.inbox.due(skip=self.queued(), fresh_too=fresh_too)
        for entry in due:
            update = Update.de_json(entry.payload, application.bot)
            self.note_queued([entry.update_id])
            await application.update_queue.put(update)
        if due:
            log.info("replaying %d unfinished updates from the inbox", len(due))
        return len(due)


class DurableBot(ExtBot):
    """The bot whose ``get_updates`` stores each batch in the inbox before returning it, so
    that the updater confirms it (with the next offset) only once it is safe."""

    __slots__ = ("_delivery", "_received", "_store_streak", "_telegram_streak")

    def __init__(self, delivery: Delivery, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        with self._unfrozen():
            self._delivery = delivery
            self._received: dict[int, dict[str, Any]] = {}
            self._store_streak = _Streak("the store")
            self._telegram_streak = _Streak("Telegram")

    async def _post(self, endpoint: str, *args: Any, **kwargs: Any) -> Any:
        result = await super()._post(endpoint, *args, **kwargs)
        if endpoint == "getUpdates" and isinstance(result, list):
            # Keep the JSON as received for the inbox: rebuilding it from the parsed updates
            # (Update.to_dict) cost about 5% of the CPU of handling them.
            self._received.clear()
            self._received.update((raw["update_id"], trim_update(raw))
                                  for raw in result if "update_id" in raw)
            return result
        if sent_message_ignored() and isinstance(result, dict) and "message_id" in result:
            return True  # as for an inline message's edit: nothing to build
        return trim_answer(result)

    async def get_updates(self, *args: Any, **kwargs: Any) -> tuple[Update, ...]:
        try:
            updates = await super().get_updates(*args, **kwargs)
        except (BadRequest, TimedOut):
            raise  # a bad request is a bug; a long poll timing out is ordinary
        except NetworkError as error:
            # PTB would log each of these with a traceback; wait and ask again instead.
            await asyncio.sleep(self._telegram_streak.failed(error))
            return ()
        self._telegram_streak.succeeded()
        received = dict(self._received)
        self._received.clear()
        try:
            updates = tuple(await self._delivery.record(updates, received))
        except SQLAlchemyError as error:
            # Not stored, so not confirmed: returning nothing keeps the offset where it is and
            # Telegram sends the same batch again.
            await asyncio.sleep(self._store_streak.failed(error))
            return ()
        self._store_streak.succeeded()
        return updates


class InboxProcessor(ChatOrderedProcessor):
    """Per-chat order (see ``bot.update_processor``), and the inbox claim around each update."""

    def __init__(self, delivery: Delivery, max_running: int = DEFAULT_MAX_RUNNING, *,
                 inner: BaseUpdateProcessor | None = None) -> None:
        super().__init__(max_running, inner=inner)
        self.delivery = delivery

    async def handle(self, update: object, coroutine: Awaitable[Any]) -> None:
        if isinstance(update, Update):
            await self.delivery.handle(update, coroutine, self.run)
        else:
            await self.run(update, coroutine)


async def receive_update(application: Application, update: Update,
                         payload: dict[str, Any] | None = None) -> None:
    """Webhook path: store the update (``payload``: its JSON as received), then queue it.
    Answer Telegram 200 only after this returned; if it raises, answer an error so that
    Telegram delivers the update again."""
    delivery: Delivery = application.bot_data[DELIVERY]
    (update,) = await delivery.record([update], {update.update_id: payload} if payload else None)
    await application.update_queue.put(update)


async def on_temporary_failure(update: object, context: Any) -> None:
    """First error handler: a handler cut short by a temporary failure is retried from the
    inbox later, without an apology or a traceback; an update applied already stays so."""
    error = context.error
    update_id = update.update_id if isinstance(update, Update) else None
    if isinstance(error, AlreadyApplied):
        log.info("update %s was applied before; not applied again", update_id)
        raise ApplicationHandlerStop
    entry = applying_now()
    if entry is None or not is_temporary(error):
        return
    if entry.marked_done:
        log.warning("update %s applied, but its answer failed (%s)", update_id,
                    type(error).__name__)
        raise ApplicationHandlerStop
    if entry.attempt >= MAX_ATTEMPTS:
        return  # out of retries: the usual error handler apologises
    entry.failed_transiently = True
    log.warning("update %s interrupted (%s); it will be retried", update_id,
                type(error).__name__)
    raise ApplicationHandlerStop


class InboxKeeper:
    """Replays unfinished inbox entries whose lease ran out, and prunes old done ones."""

    def __init__(self, delivery: Delivery, *, interval: float | None = None) -> None:
        self.delivery = delivery
        self.interval = interval or SWEEP_INTERVAL
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._streak = _Streak("the store (inbox)")
        # None until the first pruning (monotonic time starts near 0 on a fresh machine).
        self._pruned_at: float | None = None

    async def start(self) -> None:
        """Queue what a previous run left unfinished (before any new update), then keep
        sweeping in the background."""
        try:
            await self.delivery.replay(fresh_too=True)
        except SQLAlchemyError as error:
            self._streak.failed(error)
        self._stop.clear()
        self._task = asyncio.create_task(self._run(), name="ticketbot-inbox")

    async def stop(self) -> None:
        self._stop.set()
        self.delivery.cancel_claim_retries()
        if self._task is not None:
            await self._task
            self._task = None

    async def sweep(self) -> None:
        await self.delivery.renew_leases()
        application = self.delivery.application
        if application is not None and application.running:
            await self.delivery.replay()
        if (self._pruned_at is None
                or time.monotonic() - self._pruned_at >= PRUNE_INTERVAL.total_seconds()):
            pruned = await self.delivery.inbox.prune()
            self._pruned_at = time.monotonic()
            if pruned:
                log.info("forgot %d old inbox entries", pruned)

    async def _run(self) -> None:
        pause = self.interval
        while not self._stop.is_set():
            try:
                await self.sweep()
                self._streak.succeeded()
                pause = self.interval
            except SQLAlchemyError as error:
                pause = max(self.interval, self._streak.failed(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), pause)


def install(application: Application, delivery: Delivery) -> None:
    """Make ``application`` deliver through ``delivery`` (its bot must be a DurableBot and
    its processor an InboxProcessor on the same delivery)."""
    delivery.application = application
    application.bot_data[DELIVERY] = delivery
    # Before the other error handlers, so that it can spare the user a needless apology.
    application.add_error_handler(on_temporary_failure)
