"""How the bot's process asks the C allocator for memory: two malloc arenas, not one per thread.

glibc's malloc gives each thread that allocates while another holds an arena an arena of its
own, up to eight per core. The bot runs one thread per pooled SQLite connection (aiosqlite,
eight by default) and the worker threads that draw ticket files; each arena keeps the memory
its thread freed for that thread, so freed pages pile up once per arena. Under the benchmark
(``python -m bench.run --parts throughput``) two arenas took the bot's peak RSS down by about
10 MiB (docs/performance.md) at no measurable CPU cost: the threads mostly wait for SQLite or
the GIL, not for each other's malloc.

Once started, the bot also settles its heap for Python's garbage collector (``settle_heap``):
what start-up built lives as long as the process, so the collector stops walking it.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os

log = logging.getLogger(__name__)

ARENAS = 2
_M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's <malloc.h>


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas at ``arenas``, unless ``MALLOC_ARENA_MAX`` is set (the
    operator's choice wins). Call it before the first thread starts: an arena made before stays.
    Whether the cap was set; elsewhere than glibc (musl, macOS) nothing is done."""
    if "MALLOC_ARENA_MAX" in os.environ or not _glibc():
        return False
    # The C library the interpreter itself is linked with: no name to look up.
    if not ctypes.CDLL(None).mallopt(_M_ARENA_MAX, arenas):
        log.warning("could not limit malloc arenas to %d", arenas)
        return False
    return True


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not a GNU C library: the name is unknown there
        return False


def settle_heap() -> int:
    """Freeze what start-up built; call it once the bot serves. The interpreter, the
    libraries, the application, its handlers and the store's compiled statements are some
    150,000 objects that live as long as the process: each full collection walked them all
    (about 100 ms, a pause that every update in flight then waits out) and found nothing to
    free. Frozen, the collector leaves them alone. How many were frozen.

    Python's thresholds for young collections stay as they are: 10,000 instead of 700 saved
    another 0.07 ms of an update's 6 ms, and raised the peak RSS by 3–4 MiB
    (docs/performance.md)."""
    gc.collect()  # start-up's own garbage goes now, not into the frozen generation
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("heap settled: %d objects frozen", frozen)
    return frozen
