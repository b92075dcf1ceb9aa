"""Per-target send budget: a rolling window with a safety margin, and the slot ladder.

Both robot services count messages in a rolling minute (20 per robot); the 21st is refused
(WeCom 45009) or blocks the robot for ten minutes (DingTalk 130101). A send that leaves exactly
60 s after the first of 20 can still arrive inside the service's minute (clocks, network jitter),
so the budget here keeps a margin on both axes:

* ``limit`` is the documented limit minus ``headroom`` (19 of 20), and
* the window is the service's window times ``1 + margin`` (63 s), and each send is timed at its
  *reply*, which comes after the service counted it: the next send starts a full window after a
  moment that was already later than the service's count.

The slot ladder (docs/channels.md "Queueing"): of the ``limit`` slots in a window,

* a **new** critical alarm (a kind not yet posted to this target in the window) may use any slot;
* critical **follow-ups** (more alarms of a kind already posted, reminders) leave ``reserve_for_new``
  slots free, and also the part of ``normal_share`` ordinary messages have not used yet while
  some are waiting — the ordinary messages' guaranteed share;
* **ordinary** messages within their share leave ``reserve_for_new`` free; past their share they
  also leave ``reserve_for_critical``.

A service may also count over a longer window (the WeCom application: 1000 per member per hour,
beside 30 per minute; more are dropped without an error). Such a **cap** is a plain rolling limit
with the same headroom and margin, checked besides the window; the ladder stays in the window.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_config.channel_settings import ChannelSettings

NEW = "new"
FOLLOW_UP = "follow_up"
NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class Ladder:
    reserve_for_new: int = 2
    reserve_for_critical: int = 2
    normal_share: int = 4


class RollingLimiter:
    """At most ``limit`` sends in any rolling ``window_ms``; ``blocked_until`` after a 'too fast' reply."""

    def __init__(
        self, limit: int, window_ms: int, ladder: Ladder | None = None, caps: tuple[tuple[int, int], ...] = ()
    ) -> None:
        self.limit = max(1, limit)
        self.window_ms = window_ms
        self.ladder = ladder or Ladder()
        self.sent: collections.deque[tuple[int, str]] = collections.deque()  # (reply time, slot class)
        self.blocked_until = 0
        # longer windows: (limit, window_ms) -> reply times in that window
        self.caps: dict[tuple[int, int], collections.deque[int]] = {
            (max(1, n), w): collections.deque() for n, w in caps
        }

    def _trim(self, now: int) -> None:
        while self.sent and self.sent[0][0] <= now - self.window_ms:
            self.sent.popleft()

    def allowance(self, slot: str, *, normal_waiting: bool = False) -> int:
        """How many sends may be in the window for a send of class ``slot`` to go (at least 1)."""
        lad = self.ladder
        if slot == NEW:
            return self.limit
        normal_sent = sum(1 for _, c in self.sent if c == NORMAL)
        if slot == FOLLOW_UP:
            share_left = max(0, lad.normal_share - normal_sent) if normal_waiting else 0
            return max(1, self.limit - lad.reserve_for_new - share_left)
        keep = lad.reserve_for_new + (0 if normal_sent < lad.normal_share else lad.reserve_for_critical)
        return max(1, self.limit - keep)

    def free_at(self, now: int, slot: str = NORMAL, *, normal_waiting: bool = False) -> int:
        """When a send of class ``slot`` is allowed (``now`` if at once)."""
        self._trim(now)
        at = max(now, self.blocked_until)
        allow = self.allowance(slot, normal_waiting=normal_waiting)
        if len(self.sent) >= allow:
            # the (len - allow + 1)-th oldest send must leave the window
            at = max(at, self.sent[len(self.sent) - allow][0] + self.window_ms)
        for (n, w), times in self.caps.items():
            while times and times[0] <= now - w:
                times.popleft()
            if len(times) >= n:  # no ladder here: a cap is the service's, whatever the class
                at = max(at, times[len(times) - n] + w)
        return at

    def record(self, reply_ms: int, slot: str = NORMAL) -> None:
        self._trim(reply_ms)
        self.sent.append((reply_ms, slot))
        for times in self.caps.values():
            times.append(reply_ms)

    def take_over(self, old: RollingLimiter) -> None:
        """Carry an earlier limiter's sends and block over (a reload must not reset a service's count)."""
        self.sent, self.blocked_until = old.sent, old.blocked_until
        for key, times in zip(list(self.caps), old.caps.values(), strict=False):  # by position: limits may change
            self.caps[key] = times

    def block(self, until: int) -> None:
        self.blocked_until = max(self.blocked_until, until)

    def in_window(self, now: int) -> int:
        self._trim(now)
        return len(self.sent)


def window_ms(s: ChannelSettings) -> int:
    """The counting window: the services' window plus the safety margin (default 63 s)."""
    return int(s.rate.window_s * (1 + s.rate.margin) * 1000)


def for_target(s: ChannelSettings, documented_limit: int, per_hour: int | None = None) -> RollingLimiter:
    """The budget of one target whose service allows ``documented_limit`` per window (default 19 per 63 s)
    and, when ``per_hour`` is set, that many per 60 windows (an hour: 999 per 63 minutes)."""
    g = s.grouping
    caps = ((per_hour - s.rate.headroom, 60 * window_ms(s)),) if per_hour is not None else ()
    return RollingLimiter(
        documented_limit - s.rate.headroom,
        window_ms(s),
        Ladder(g.reserve_for_new, g.reserve_for_critical, g.normal_share),
        caps,
    )
