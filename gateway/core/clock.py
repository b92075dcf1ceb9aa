"""Wall-clock step detection.

A Raspberry Pi has no real-time clock and compound networks often lack NTP: the wall clock may
start at the last saved time (fake-hwclock) and later jump by hours when NTP or an installer sets
it. Rule timers hold wall-clock due times, so an unnoticed forward jump would fire every stored
timer at once. :class:`StepDetector` compares how far the wall clock moved with how far the
monotonic clock moved since the last check; a difference beyond the threshold is a step.
Both clocks are injectable so tests can simulate steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wall_ms() -> int:
    return time.time_ns() // 1_000_000


def mono_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class StepDetector:
    def __init__(
        self,
        threshold_ms: int = 120_000,
        *,
        wall: Callable[[], int] = wall_ms,
        mono: Callable[[], int] = mono_ms,
    ) -> None:
        self.threshold_ms = threshold_ms
        self.wall = wall
        self.mono = mono
        self._last: tuple[int, int] | None = None
        self.steps = 0
        self.last_step_ms = 0

    def check(self, wall_now: int | None = None) -> int:
        """Signed step in ms (wall moved this much more than monotonic time), or 0.

        ``wall_now`` lets the caller pass the wall time it already read (the pipeline's ``now``)
        so both agree on what "now" is.
        """
        w = self.wall() if wall_now is None else wall_now
        m = self.mono()
        last, self._last = self._last, (w, m)
        if last is None:
            return 0
        step = (w - last[0]) - (m - last[1])
        if abs(step) > self.threshold_ms:
            self.steps += 1
            self.last_step_ms = step
            return step
        return 0
