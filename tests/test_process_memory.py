"""The bot's process keeps two malloc arenas however many threads allocate
(``bot/process_memory.py``), and leaves the operator's ``MALLOC_ARENA_MAX`` alone.

Each case runs in a fresh interpreter: the cap only holds if set before threads allocate.
glibc's ``malloc_info`` lists one ``<heap nr=…>`` per arena.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

ARENAS_AFTER_EIGHT_THREADS = """
import ctypes, json, sys, tempfile, threading

from bot.process_memory import limit_malloc_arenas

capped = limit_malloc_arenas() if sys.argv[1] == "limit" else None
ready = threading.Barrier(8)


def allocate():
    blocks = [bytearray(4096) for _ in range(100)]  # past pymalloc: from malloc's arena
    ready.wait()  # all eight alive at once: none can take over another's arena


threads = [threading.Thread(target=allocate) for _ in range(8)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as report:
    stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    arenas = report.read().count("<heap nr=")
print(json.dumps({"capped": capped, "arenas": arenas}))
"""

pytestmark = pytest.mark.skipif(
    not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"),
    reason="malloc arenas are glibc's")


def arenas_after_eight_threads(mode: str, **environment: str) -> dict:
    env = {key: value for key, value in os.environ.items() if key != "MALLOC_ARENA_MAX"}
    output = subprocess.run(
        [sys.executable, "-c", ARENAS_AFTER_EIGHT_THREADS, mode], cwd=ROOT, check=True,
        capture_output=True, text=True, env={**env, **environment}).stdout
    return json.loads(output)


def test_eight_threads_share_two_arenas_once_limited():
    assert arenas_after_eight_threads("limit") == {"capped": True, "arenas": 2}


def test_without_the_limit_each_thread_takes_an_arena():
    """What the limit prevents: the check above would see it."""
    assert arenas_after_eight_threads("as is")["arenas"] > 2


def test_the_operator_s_malloc_arena_max_wins():
    assert arenas_after_eight_threads("limit", MALLOC_ARENA_MAX="4") == {
        "capped": False, "arenas": 4}


SETTLED_HEAP = """
import gc, json, weakref

from bot.process_memory import settle_heap


class Node:
    pass


def cycle():
    node = Node()
    node.self = node
    return weakref.ref(node)


kept = [Node() for _ in range(1000)]  # start-up's long-lived objects
gc.disable()  # no collection but the ones asked for: the check sees what each one did
startup_garbage = cycle()
frozen = settle_heap()
later_garbage = cycle()
walked_before = len(gc.get_objects())
gc.collect()
print(json.dumps({
    "frozen": frozen, "kept_frozen": frozen >= len(kept),
    "startup_garbage_freed": startup_garbage() is None,
    "later_garbage_freed": later_garbage() is None,
    "walked": walked_before,
}))
"""


def test_a_settled_heap_leaves_start_up_to_itself_and_still_frees_later_garbage():
    output = subprocess.run([sys.executable, "-c", SETTLED_HEAP], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout
    report = json.loads(output)
    # Start-up's garbage was collected first, not frozen for good; what lived was frozen, and
    # a full collection now walks only what came after (a handful of objects, not thousands).
    assert report["startup_garbage_freed"] and report["kept_frozen"]
    assert report["walked"] < 100 < report["frozen"]
    assert report["later_garbage_freed"]
