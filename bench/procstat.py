"""CPU time and memory of a process, read from /proc (Linux), plus a sampler over a run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of the process, all its threads included (/proc/<pid>/stat)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # The command name (field 2) may hold spaces; the fields after its ")" are fixed.
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # fields 14 and 15 of stat(5)


def memory_kb(pid: int) -> dict[str, int]:
    """VmHWM (peak resident set) and VmRSS, in kB, from /proc/<pid>/status."""
    found: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            found[key] = int(value.split()[0])
    return found


@dataclass
class CpuWindow:
    """CPU seconds used by a process between `start()` and `stop()`, sampled on the way."""

    pid: int
    interval_s: float = 0.5
    samples: list[tuple[float, float]] = field(default_factory=list)  # (wall time, cpu s)
    peak_rss_kb: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._sample()
        self._task = asyncio.create_task(self._run(), name=f"cpu-sampler-{self.pid}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._sample()

    def _sample(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self.samples.append((time.time(), cpu_seconds(self.pid)))
            self.peak_rss_kb = max(self.peak_rss_kb, memory_kb(self.pid).get("VmHWM", 0))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._sample()

    @property
    def cpu(self) -> float:
        return self.samples[-1][1] - self.samples[0][1] if len(self.samples) > 1 else 0.0

    @property
    def wall(self) -> float:
        return self.samples[-1][0] - self.samples[0][0] if len(self.samples) > 1 else 0.0

    def cores_between(self, start: float, end: float) -> float | None:
        """Average cores used between two wall times (nearest samples), None if too short."""
        inside = [s for s in self.samples if start <= s[0] <= end]
        if len(inside) < 2 or inside[-1][0] - inside[0][0] < 1.0:
            return None
        return (inside[-1][1] - inside[0][1]) / (inside[-1][0] - inside[0][0])

    def peak_cores(self, span_s: float = 5.0) -> float:
        """The busiest `span_s` window of the run, in cores."""
        best = 0.0
        j = 0
        for i, (t, c) in enumerate(self.samples):
            while self.samples[j][0] < t - span_s:
                j += 1
            if i > j and t - self.samples[j][0] >= span_s * 0.8:
                best = max(best, (c - self.samples[j][1]) / (t - self.samples[j][0]))
        return best
