"""How far ``ticketbot import`` is: a progress bar with counts on a terminal (tqdm), plain
lines otherwise (a log file, a pipe, a CI job), one per tenth of each stage.

The importer reports three stages
(``storage.services.importing.importer.Progress``): reading the file (bytes),
checking it against the store and writing it (orders). Reading reports come from the import's
worker thread, the others from the event loop, never at the same time.
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

from storage.services.importing.importer import Progress

STAGE_NAMES = {"reading": "reading and checking the file", "checking": "comparing with the store",
               "writing": "writing"}


def _counts(progress: Progress) -> str:
    return f"{progress.orders:,} orders, {progress.tickets:,} tickets"


class ImportProgressDisplay:
    """A ``progress`` callback for ``import_file`` that shows it on ``stream``."""

    def __init__(self, stream: TextIO | None = None, *, interactive: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self._stage: str | None = None
        self._bar: tqdm | None = None
        self._tenths = -1

    def __call__(self, progress: Progress) -> None:
        if progress.stage != self._stage:
            self.close()
            self._stage, self._tenths = progress.stage, -1
            if self.interactive:
                reading = progress.stage == "reading"
                self._bar = tqdm(total=progress.total, desc=STAGE_NAMES[progress.stage],
                                 unit="B" if reading else " orders", unit_scale=reading,
                                 unit_divisor=1024 if reading else 1000, file=self.stream,
                                 dynamic_ncols=True, leave=True)
        if self._bar is not None:
            self._bar.update(progress.done - self._bar.n)
            if progress.stage == "reading":
                self._bar.set_postfix_str(_counts(progress), refresh=False)
            return
        self._line(progress)

    def _line(self, progress: Progress) -> None:
        if not progress.total:
            return
        tenths = progress.done * 10 // progress.total
        if tenths <= self._tenths:
            return
        self._tenths = tenths
        if progress.stage == "reading":
            done = (f"{progress.done / 1e6:,.1f} MB of {progress.total / 1e6:,.1f} MB, "
                    f"{_counts(progress)}")
        else:
            done = f"{progress.done:,} of {progress.total:,} orders"
        print(f"{STAGE_NAMES[progress.stage]}: {tenths * 10}% ({done})", file=self.stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
