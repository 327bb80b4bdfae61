"""Where a profiled bot spent its time, by package: our own modules (bot, conversations,
storage, locales), each library (sqlalchemy, telegram, httpx, httpcore…), the event loop, and
the time the event loop sat waiting (``epoll``: for the network, and for aiosqlite's thread,
which pyinstrument does not sample).

    .venv/bin/python -m bench.profile_summary bench/results/profile-….pyisession
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path
from typing import Any

OUR_PACKAGES = ("bot", "conversations", "storage", "locales", "bench")
WAITING = "(waiting: event loop idle, network, aiosqlite's thread)"


def category(frame: Any, inherited: str) -> str:
    path = frame.file_path or ""
    if path == "<built-in>" and frame.function in ("epoll.poll", "poll", "select"):
        return WAITING
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1].split("/", 1)[0].split(".", 1)[0]
    for package in OUR_PACKAGES:
        if f"/{package}/" in path and "/lib/python" not in path:
            return f"ours: {package}"
    if "/lib/python" in path:
        module = path.split("/lib/python", 1)[1].split("/", 2)
        return f"stdlib: {module[1].removesuffix('.py')}" if len(module) > 1 else "stdlib"
    return inherited  # built-ins count for whoever called them


def by_package(root: Any) -> Counter[str]:
    """Self time of every frame, summed by the package its code belongs to."""
    totals: Counter[str] = Counter()
    stack = [(root, "other")]
    while stack:
        frame, inherited = stack.pop()
        here = category(frame, inherited)
        children = frame.children
        totals[here] += frame.time - sum(child.time for child in children)
        stack.extend((child, here) for child in children)
    return totals


def render(root: Any) -> str:
    totals = by_package(root)
    whole = sum(totals.values()) or 1.0
    lines = [f"{'seconds':>9} {'share':>6}  where"]
    lines += [f"{seconds:9.2f} {seconds / whole:6.1%}  {name}"
              for name, seconds in totals.most_common()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from pyinstrument.session import Session

    for path in argv if argv is not None else sys.argv[1:]:
        print(f"{path}:")
        print(render(Session.load(str(Path(path))).root_frame()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
