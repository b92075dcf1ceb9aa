"""Parking as people look at it: each space free, occupied or unknown now, and occupancy by hour.

Live state. The device table's values reach the store up to a second or two after a reading
(pipeline: coalesced, written by later commits), too late for a plan that must change colour
within 2 s. So :class:`LiveParking` listens to the pipeline's commits (it runs on the pipeline
thread after each commit: one dict update per space reading, under a lock) and keeps the newest
``vehicle_present`` per device; the device rows fill in what it has not seen since it started.
It is installed before the rows are first read, so nothing falls between the two. Each change
bumps ``version``; a request that has seen the current version may wait (a fraction of a second)
for the next one, so a plan on screen changes as soon as the reading is stored.

A space is *unknown* when no device watches it, its devices are offline, none has said anything,
or the newest word is ``vehicle_present: null`` (a camera that cannot tell).

Occupancy by hour: from the space sensors' readings (store migration 9 indexes the rows that
carry ``vehicle_present`` by time): for each hour, the share of space-time occupied among the
spaces whose state was known, in the site's time zone; today against the mean of the 7 days before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import threading
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.core import incidents as inc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

KEY = "vehicle_present"
UNKNOWN = "vehicle_unknown"  # a camera that cannot tell publishes this instead of vehicle_present


def _space_value(values: Any) -> tuple[bool, bool | None]:
    """(is a space reading, its value: True/False, or None when the sensor or camera cannot tell)."""
    if not isinstance(values, dict):
        return False, None
    if values.get(UNKNOWN) is True:
        return True, None
    if KEY in values:
        return True, values[KEY] if isinstance(values[KEY], bool) else None
    return False, None


HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS


def space_devices(cfg: SiteConfig) -> dict[str, list[str]]:
    """Space id -> ids of the devices watching it (sensors, camera spaces), in config order."""
    out: dict[str, list[str]] = defaultdict(list)
    for d in cfg.owned_devices():
        if d.location.parking_space is not None:
            out[d.location.parking_space].append(d.id)
    return dict(out)


class LiveParking:
    """Newest ``vehicle_present`` per device, from the commits (see the module's docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[bool | None, int]] = {}  # device -> (value, ts_ms)
        self._devices: frozenset[str] = frozenset()
        self.version = 0
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def watch(self, devices: Iterable[str]) -> None:
        with self._lock:
            self._devices = frozenset(devices)

    def on_commit(self, result: BatchResult) -> None:
        """Pipeline thread, after a commit: keep the space readings, nothing else."""
        devices = self._devices
        found = []
        for r in result.resolved:
            if r.device.id in devices:
                is_space, value = _space_value(dict(r.reading.values))
                if is_space:
                    found.append((r.device.id, value, r.ts_ms))
        if found:
            with self._lock:
                # Receive order, not reading time: a device's clock may be trusted for one message
                # and not the next (then its time is the receive time), so times can run backwards.
                for dev, value, ts in found:
                    self._values[dev] = (value, ts)
                self.version += 1
                waiters = list(self._waiters)
            for loop, ev in waiters:  # wake the requests waiting for a change (on their loop)
                loop.call_soon_threadsafe(ev.set)

    async def changed(self, seen: int, timeout_s: float) -> None:
        """Return when ``version`` differs from ``seen``, or after ``timeout_s``."""
        ev = asyncio.Event()
        entry = (asyncio.get_running_loop(), ev)
        with self._lock:
            if self.version != seen:
                return
            self._waiters.add(entry)
        try:
            await asyncio.wait_for(ev.wait(), timeout_s)
        except TimeoutError:
            pass
        finally:
            with self._lock:
                self._waiters.discard(entry)

    def snapshot(self) -> dict[str, tuple[bool | None, int]]:
        with self._lock:
            return dict(self._values)


@dataclass(frozen=True)
class SpaceState:
    state: str  # free | occupied | unknown
    why: str | None  # for unknown: no_device | offline | no_reading | unsure
    ts_ms: int | None


def space_state(
    devices: list[str], rows: dict[str, dict[str, Any]], live: dict[str, tuple[bool | None, int]]
) -> SpaceState:
    if not devices:
        return SpaceState("unknown", "no_device", None)
    newest: tuple[bool | None, int] | None = None
    offline = 0
    for dev in devices:
        row = rows.get(dev)
        if row is not None and row.get("online") is False:
            offline += 1
            continue
        seen = live.get(dev)
        if seen is None and row is not None:
            is_space, value = _space_value(row.get("values") or {})
            if is_space:
                seen = (value, int(row.get("last_seen_ms") or 0))
        if seen is not None and (newest is None or seen[1] > newest[1]):
            newest = seen
    if newest is None:
        return SpaceState("unknown", "offline" if offline == len(devices) else "no_reading", None)
    if newest[0] is None:
        return SpaceState("unknown", "unsure", newest[1])
    return SpaceState("occupied" if newest[0] else "free", None, newest[1])


def open_parking_incidents(conn: sqlite3.Connection) -> dict[str, dict[str, Any]]:
    """Space -> its most severe open incident (fire lane, no parking, overstay ...)."""
    states = sorted(inc.OPEN_STATES)
    rows = conn.execute(
        "SELECT id, type, severity, state, space, first_ms, grid, compound FROM incidents"
        f" WHERE state IN ({','.join('?' * len(states))}) AND space IS NOT NULL ORDER BY first_ms",
        states,
    ).fetchall()
    out: dict[str, dict[str, Any]] = {}
    for iid, typ, sev, state, space, first, grid, compound in rows:
        cur = out.get(space)
        if cur is None or inc.severity_rank(sev) < inc.severity_rank(cur["severity"]):
            out[space] = {
                "id": iid,
                "type": typ,
                "severity": sev,
                "state": state,
                "first_ms": first,
                "grid": grid,
                "compound": compound,
            }
    return out


# --- occupancy by hour ---------------------------------------------------------------------------


def _day_start(now_ms: int, tz: ZoneInfo) -> int:
    d = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    return int(d.replace(hour=0, minute=0, second=0, microsecond=0).timestamp() * 1000)


def hourly(
    conn: sqlite3.Connection, devices: dict[str, str], tz: ZoneInfo, now_ms: int, days: int = 7
) -> dict[str, Any]:
    """Occupancy % per hour of today and the mean of each hour over the ``days`` days before.

    ``devices``: device id -> space id. Each space's state changes at its readings; a space counts
    in an hour for the time its state was known (from its first reading on)."""
    today = _day_start(now_ms, tz)
    start = _day_start(today - days * DAY_MS + HOUR_MS, tz)  # DST-safe: a local midnight
    look_back = start - DAY_MS  # the state at the window's start (sensors report at least daily)
    events: dict[str, list[tuple[int, bool | None]]] = defaultdict(list)
    for dev, ts, vals in conn.execute(
        "SELECT device_id, ts_ms, vals FROM readings WHERE instr(vals, '\"vehicle_present\"') > 0"
        " AND ts_ms >= ? AND ts_ms <= ? ORDER BY ts_ms",
        (look_back, now_ms),
    ):
        space = devices.get(dev)
        if space is None:
            continue
        v = json.loads(vals).get(KEY)
        events[space].append((int(ts), v if isinstance(v, bool) else None))
    hours = _hour_starts(start, now_ms, tz)
    occupied = [0.0] * len(hours)
    known = [0.0] * len(hours)
    for evs in events.values():
        _accumulate(evs, hours, now_ms, occupied, known)
    by_day: dict[int, list[float | None]] = defaultdict(lambda: [None] * 24)
    for i, h in enumerate(hours):
        local = dt.datetime.fromtimestamp(h / 1000, tz)
        day = _day_start(h, tz)
        if known[i] > 0:
            by_day[day][local.hour] = round(100.0 * occupied[i] / known[i], 1)
    today_row = by_day.get(today, [None] * 24)
    past = [row for day, row in by_day.items() if day < today]
    mean: list[float | None] = []
    for hour in range(24):
        vals = [row[hour] for row in past if row[hour] is not None]
        mean.append(round(sum(v for v in vals if v is not None) / len(vals), 1) if vals else None)
    return {"today": today_row, "mean_days": mean, "days": len(past), "day_start_ms": today}


def _hour_starts(start: int, end: int, tz: ZoneInfo) -> list[int]:
    out = []
    t = start
    while t < end:
        out.append(t)
        t += HOUR_MS  # whole hours in epoch time are whole local hours for the zones of this product
    return out


def _accumulate(
    evs: list[tuple[int, bool | None]], hours: list[int], now_ms: int, occupied: list[float], known: list[float]
) -> None:
    """Add one space's occupied and known milliseconds to each hour bucket."""
    for k, (ts, value) in enumerate(evs):
        until = evs[k + 1][0] if k + 1 < len(evs) else now_ms
        if value is None or until <= ts:
            continue
        lo = max(ts, hours[0])
        while lo < until:
            i = (lo - hours[0]) // HOUR_MS
            if i >= len(hours):
                break
            hi = min(until, hours[i] + HOUR_MS)
            known[i] += hi - lo
            if value:
                occupied[i] += hi - lo
            lo = hi
