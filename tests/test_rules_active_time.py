"""add_active_time (inactivity timers): the daily windows it walks are memoised per day; the result
is the same as computing every window afresh, across midnight and daylight-saving changes."""

from __future__ import annotations

import datetime as dt
import random
from zoneinfo import ZoneInfo

from gateway.rules.base import add_active_time, local


def reference(start_ms: int, dur_ms: int, tz: ZoneInfo, start: dt.time, end: dt.time) -> int:
    """The computation as it was written before the windows were memoised."""
    if start == end:
        return start_ms + dur_ms
    remaining = dur_ms
    cur = start_ms
    day0 = local(start_ms, tz).date() - dt.timedelta(days=1)
    for d in range(0, 800):
        day = day0 + dt.timedelta(days=d)
        ws = dt.datetime.combine(day, start, tz)
        we = dt.datetime.combine(day + dt.timedelta(days=1) if end < start else day, end, tz)
        ws_ms, we_ms = int(ws.timestamp() * 1000), int(we.timestamp() * 1000)
        if we_ms <= cur:
            continue
        s = max(cur, ws_ms)
        avail = we_ms - s
        if avail >= remaining:
            return s + remaining
        remaining -= avail
        cur = we_ms
    return start_ms + dur_ms


def test_add_active_time_matches_the_fresh_computation() -> None:
    rng = random.Random(25)
    windows = [
        (dt.time(7), dt.time(22)),
        (dt.time(22), dt.time(6)),
        (dt.time(0), dt.time(0)),
        (dt.time(8, 30), dt.time(8, 45)),
    ]
    zones = [ZoneInfo("Asia/Shanghai"), ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York")]
    # around the 2026 daylight-saving changes and an ordinary day
    bases = [
        int(dt.datetime(2026, 3, 29, 0, tzinfo=dt.UTC).timestamp() * 1000),
        int(dt.datetime(2026, 10, 25, 0, tzinfo=dt.UTC).timestamp() * 1000),
        int(dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC).timestamp() * 1000),
        int(dt.datetime(2026, 6, 15, 12, tzinfo=dt.UTC).timestamp() * 1000),
    ]
    for _ in range(3000):
        tz = rng.choice(zones)
        start, end = rng.choice(windows)
        t = rng.choice(bases) + rng.randrange(-2 * 86_400_000, 2 * 86_400_000)
        dur = rng.choice([1, 60_000, 3_600_000, 12 * 3_600_000, 30 * 3_600_000, 72 * 3_600_000])
        assert add_active_time(t, dur, tz, start, end) == reference(t, dur, tz, start, end)
