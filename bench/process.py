"""The benchmark's side of a bot subprocess: start it, mark the measured phase, read its CPU
time and memory from ``/proc``, stop it and collect its statistics (see ``bench.serving``)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, all its threads included."""
    with open(f"/proc/{pid}/stat") as file:
        # The command name may hold spaces: the fields that follow it start after its ")".
        fields = file.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time the whole machine spent busy since boot, all cores together."""
    with open("/proc/stat") as file:
        fields = [int(v) for v in file.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def cpu_seconds_of(command_name: str) -> float:
    """CPU time of every running process called ``command_name`` (e.g. PostgreSQL's)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue  # gone meanwhile
        name = text[text.find("(") + 1:text.rfind(")")]
        if name == command_name:
            fields = text.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    return total


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (resident now) and VmHWM (peak resident) of a process, in KiB."""
    found = {}
    with open(f"/proc/{pid}/status") as file:
        for line in file:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                found[key] = int(value.split()[0])
    return found


class BotProcess:
    """A bot running as ``python -m MODULE ARGS`` in a process of its own."""

    def __init__(self, name: str, module: str, args: list[str], *, log_file: Path) -> None:
        self.name = name
        self.command = [sys.executable, "-m", module, *args]
        self.log_file = log_file
        self.process: asyncio.subprocess.Process | None = None
        self._lines: asyncio.Queue[str] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._log: Any = None
        self.info: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    async def start(self, timeout: float = 120.0) -> None:  # noqa: ASYNC109
        self._log = _open_log(self.log_file)
        self.process = await asyncio.create_subprocess_exec(
            *self.command, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=self._log,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self._reader = asyncio.create_task(self._read_lines())
        self.info = json.loads(await self._expect("READY", timeout) or "{}")

    async def _read_lines(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            await self._lines.put(raw.decode().strip())
        await self._lines.put("")  # end of output

    async def _expect(self, word: str, timeout: float) -> str:  # noqa: ASYNC109
        """Wait for a line starting with ``word``; the rest of it."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self._lines.get()
                if line.split(" ", 1)[0] == word:
                    return line[len(word):].strip()
                if line == "":
                    raise RuntimeError(f"{self.name} bot exited before {word}; see "
                                       f"{self.log_file}")

    async def mark(self) -> None:
        """Start the measured phase: the bot restarts its counters (and profiler)."""
        os.kill(self.pid, signal.SIGUSR1)
        await self._expect("MARKED", 30)

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def memory_kib(self) -> dict[str, int]:
        return memory_kib(self.pid)

    async def stop(self, stats_file: Path | None = None,
                   timeout: float = 60.0) -> dict[str, Any]:  # noqa: ASYNC109
        """SIGTERM, wait, and return the statistics the bot wrote (if any)."""
        if self.process is None:
            return {}
        if self.process.returncode is None:
            self.process.terminate()
        try:
            async with asyncio.timeout(timeout):
                await self.process.wait()
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        if self._log is not None:
            self._log.close()
        return _read_json(stats_file) if stats_file is not None else {}


def _open_log(path: Path) -> Any:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "w")  # kept open while the bot runs: its stderr goes there


def _read_json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}
