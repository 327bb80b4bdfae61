"""The bot side of the benchmark, shared by both bots: run an Application with long polling in
this process until SIGTERM, and talk to the benchmark over stdout and signals.

Protocol: once it polls, the bot prints ``READY`` and a JSON object about itself; on SIGUSR1
it starts the measured phase (restarts its counters and, with ``--profile``, the profiler) and
prints ``MARKED``; on SIGTERM it stops, writes its statistics as JSON to ``--stats``, exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from telegram.ext import Application

from bench.profile_summary import render

Hook = Callable[[Application], Awaitable[None]]


def common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--api-url", required=True,
                        help="Bot API base URL, the token is appended (the emulator's)")
    parser.add_argument("--token", required=True)
    parser.add_argument("--stats", type=Path, help="write statistics here (JSON) on exit")
    parser.add_argument("--profile", type=Path,
                        help="profile the measured phase with pyinstrument; writes PATH.html "
                             "and PATH.txt")
    parser.add_argument("--poll-timeout", type=float, default=10.0)
    parser.add_argument("--webhook-port", type=int,
                        help="webhook mode: take updates on this port instead of polling")


class _Profile:
    """pyinstrument around the measured phase (it samples the event loop's thread only)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._profiler: Any = None

    def restart(self) -> None:
        if self.path is None:
            return
        from pyinstrument import Profiler

        if self._profiler is not None and self._profiler.is_running:
            self._profiler.stop()
        self._profiler = Profiler(interval=0.001, async_mode="disabled")
        self._profiler.start()

    def finish(self) -> None:
        if self._profiler is None or not self._profiler.is_running:
            return
        self._profiler.stop()
        assert self.path is not None
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Quickest first: rendering HTML of a long session takes a while.
        self._profiler.last_session.save(str(self.path.with_suffix(".pyisession")))
        self.path.with_suffix(".packages.txt").write_text(
            render(self._profiler.last_session.root_frame()) + "\n")
        self.path.with_suffix(".txt").write_text(
            self._profiler.output_text(unicode=True, color=False, show_all=False))
        # Where the time goes, library code included: functions by their own time.
        self.path.with_suffix(".flat.txt").write_text(
            self._profiler.output_text(unicode=True, color=False, flat=True))
        self.path.with_suffix(".html").write_text(self._profiler.output_html())


def concurrency(application: Application) -> int:
    """How many updates the application handles at once."""
    processor = application.update_processor
    # A processor that keeps each chat's updates in order may give PTB a huge bound and keep
    # its real limit as ``max_running``.
    return int(getattr(processor, "max_running", processor.max_concurrent_updates))


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def serve(application: Application, args: argparse.Namespace, *,
                after_initialize: Hook | None = None, before_shutdown: Hook | None = None,
                on_mark: Callable[[], None] | None = None,
                when_serving: Callable[[], Any] | None = None,
                stats: Callable[[], dict[str, Any]] | None = None,
                webhook: Any = None) -> None:
    """Poll until SIGTERM; the hooks are where a bot starts and stops its own services.
    ``webhook``: a ``bot.http.server.BotServer`` in webhook mode, which takes updates instead."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    profile = _Profile(args.profile)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    def mark() -> None:
        if on_mark is not None:
            on_mark()
        profile.restart()
        _say("MARKED")

    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, mark)

    if webhook is not None:  # our server runs the application and its services
        await webhook.start()
    else:
        await application.initialize()
        if after_initialize is not None:
            await after_initialize(application)
        await application.start()
        await application.updater.start_polling(poll_interval=0, timeout=args.poll_timeout)
    if when_serving is not None:
        when_serving()
    _say("READY " + json.dumps({"concurrency": concurrency(application)}))
    await stop.wait()
    profile.finish()
    result = stats() if stats is not None else {}
    if webhook is not None:
        await webhook.stop()
    else:
        await application.updater.stop()
        await application.stop()
        if before_shutdown is not None:
            await before_shutdown(application)
        await application.shutdown()
    if args.stats is not None:
        args.stats.write_text(json.dumps(result, indent=2))
