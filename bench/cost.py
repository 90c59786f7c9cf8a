"""What a window of load cost: CPU seconds per process over it, and the executions that reached the receiver in it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from bench.cpu import Key, Reading, arrivals_between, per_execution_ms, rounded, total, used_between
from bench.receiver import TimestampingReceiver

# Jobs fire on the second: the CPU is read half a second before the window's first second and before the second
# after its last, between two seconds' bursts, not in the middle of one (and the window still holds exactly its
# seconds' firings).
OFFSET_SECONDS = 0.5


@dataclass(frozen=True)
class Cost:
    """CPU seconds per process over a window, and the executions that reached the receiver in it."""

    cpu_seconds: Mapping[str, float]
    executions: int

    @property
    def total_seconds(self) -> float:
        return total(self.cpu_seconds)

    @property
    def ms_per_execution(self) -> float | None:
        return per_execution_ms(self.total_seconds, self.executions)

    def by_process(self) -> list[dict[str, Any]]:
        """One row per process, largest first."""
        return [
            {
                "process": name,
                "cpu_seconds": seconds,
                "cpu_ms_per_execution": per_execution_ms(self.cpu_seconds[name], self.executions),
            }
            for name, seconds in rounded(self.cpu_seconds).items()
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "executions_in_window": self.executions,
            "cpu_seconds": round(self.total_seconds, 2),
            "cpu_ms_per_execution": self.ms_per_execution,
            "cpu_seconds_by_process": rounded(self.cpu_seconds),
        }


async def measure_cost(
    read: Callable[[], Mapping[Key, Reading]], receiver: TimestampingReceiver, start: float, end: float
) -> Cost:
    """CPU over the window of firings [`start`, `end`) (Unix times), read off the event loop so that the receiver
    keeps timestamping; the executions are the requests that arrived between the two readings."""

    async def reading() -> tuple[Mapping[Key, Reading], float]:
        began = time.time()
        readings = await asyncio.to_thread(read)
        return readings, (began + time.time()) / 2

    await asyncio.sleep(max(0.0, start - OFFSET_SECONDS - time.time()))
    before, began = await reading()
    await asyncio.sleep(max(0.0, end - OFFSET_SECONDS - time.time()))
    after, ended = await reading()
    return Cost(used_between(before, after), arrivals_between(receiver.arrivals.calls, began, ended))
