"""The example community's evening peak, generated without waiting for it (bench/pi_budget.py).

The simulator (gateway/install/simulator.py) paces itself in real time; an hour of backlog must be
made in seconds. ``evening`` runs the simulator's own device behaviour (``checkin``, ``activity``,
its door/barrier timers, its day factor) on a virtual clock fixed at 18:30, the evening peak
(day factor 1.5: 60 % of messages are user activity, picked by the device types'
``sim_event_weight``; the rest are round-robin check-ins of every device), and records the
messages instead of publishing them.

Frigate camera messages are left out: the example's ingest sources do not subscribe to
``frigate/#`` (no driver consumes them yet), so the broker never delivers them and they could
not be counted as stored.
"""

from __future__ import annotations

import heapq
import itertools
import time as _time
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gateway.install import traffic
from gateway.install.simulator import Simulator, day_factor
from gateway.install.traffic import SimDevice

if TYPE_CHECKING:
    from edge_config import SiteConfig

EVENING_HOUR = 18.5


class _Recorder(Simulator):
    """The simulator with ``publish`` recording instead of sending (no broker connection)."""

    def __init__(self, cfg: SiteConfig, rate: float, seed: int) -> None:
        super().__init__(cfg, "127.0.0.1", 1, rate=rate, seed=seed)
        self.out: list[tuple[str, bytes, str | None]] = []

    def publish(self, topic: str, payload: bytes, *, device: str | None = None, retain: bool = False) -> None:
        if not topic.startswith("frigate/"):
            self.out.append((topic, payload, device))


class _VirtualClock:
    """What gateway/install/traffic.py reads of ``time``, at the virtual instant: devices that
    send their own time (native ``ts``, ChirpStack ``time``) stamp it as they would have."""

    def __init__(self, t: float) -> None:
        self.t = t
        self.strftime = _time.strftime

    def time(self) -> float:
        return self.t

    def gmtime(self, secs: float | None = None) -> _time.struct_time:
        return _time.gmtime(self.t if secs is None else secs)


def evening(
    cfg: SiteConfig, rate: float, seconds: float, seed: int = 25, start: float | None = None
) -> list[tuple[str, bytes, str | None]]:
    """``rate * seconds`` messages (topic, payload, device id) of the evening peak, in order, as
    devices would have sent them from ``start`` (epoch seconds; default now) on.

    Follows Simulator._loop: each tick is either an activity (probability 0.4 x day factor) or the
    next device's check-in; timers (a door closing 2-12 s after it opened) fire in virtual time.
    Give consecutive stretches consecutive ``start`` times: the central store keeps one point per
    series and millisecond, so two stretches stamped with the same device times would overwrite
    each other there."""
    clock = _VirtualClock(_time.time() if start is None else start)
    saved = traffic.time
    traffic.time = clock  # type: ignore[assignment]
    try:
        return _evening(cfg, rate, seconds, seed, clock)
    finally:
        traffic.time = saved


def _evening(
    cfg: SiteConfig, rate: float, seconds: float, seed: int, clock: _VirtualClock
) -> list[tuple[str, bytes, str | None]]:
    t0 = clock.t
    sim = _Recorder(cfg, rate, seed)
    timers: list[tuple[float, int, Callable[[], None]]] = []
    seq = itertools.count()
    now = 0.0

    def schedule(delay: float, dev: SimDevice, fn: Callable[[], None]) -> None:
        heapq.heappush(timers, (now + delay, next(seq), fn))

    order = sim.devices[:]
    sim.rng.shuffle(order)
    p_activity = min(0.9, 0.4 * day_factor(EVENING_HOUR))
    n = int(rate * seconds)
    for i in range(n):
        now = i / rate
        clock.t = t0 + now
        while timers and timers[0][0] <= now:
            heapq.heappop(timers)[2]()
        if sim._active and sim.rng.random() < p_activity:
            dev = sim.rng.choices(sim._active, cum_weights=sim._active_w)[0]
            sim.activity(dev, schedule)
        else:
            dev = order[i % len(order)]
            sim.publish(*sim.checkin(dev), device=dev.id)
    return sim.out[:n]


def rates_by_type(cfg: SiteConfig, msgs: list[tuple[str, bytes, str | None]], seconds: float) -> dict[str, Any]:
    """Messages per second by device type (and device count) in a generated stretch."""
    types = {d.id: d.type for d in cfg.owned_devices()}
    count = Counter(types.get(dev or "", "bridge") for _t, _p, dev in msgs)
    devices = Counter(types.values())
    return {t: (devices.get(t, 0), n / seconds) for t, n in count.most_common()}
