"""Absence / inactivity: no motion or presence in an elderly resident's home for N hours, counted
only inside that home's active hours (``residents[].active_hours``, site time zone).

N = the resident's ``inactivity_hours`` if set, else the smallest ``inactivity_hours`` of the
resident's activity devices (motion, presence, fall radar, door contacts). Every activity re-arms
one durable timer per resident whose due time is "N active hours after the last activity"
(computed once, so a restart or the night does not move it). Activity after the alarm
auto-clears it at once.
"""

from __future__ import annotations

from typing import Any

from edge_config.device_types import activity_types
from gateway.core import incidents as inc
from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, Facts, add_active_time
from gateway.rules.host import RuleHost

TYPE = "inactivity"


def resident_hours(eng: RuleHost) -> dict[str, float]:
    out: dict[str, float] = {}
    for rid, dev_ids in eng.resident_devices.items():
        r = eng.cfg.resident(rid)
        if r is None:
            continue
        hours = [eng.devices[d].settings.inactivity_hours for d in dev_ids if eng.devices[d].type in activity_types()]
        hours = [h for h in hours if h]
        if not hours:
            continue
        out[rid] = float(r.inactivity_hours) if r.inactivity_hours else float(min(hours))
    return out


def _due(eng: RuleHost, rid: str, last_ms: int) -> int:
    r = eng.cfg.resident(rid)
    assert r is not None  # inactivity_hours only holds residents of this config
    hours = eng.inactivity_hours[rid]
    ah = r.active_hours
    return add_active_time(last_ms, int(hours * 3_600_000), eng.tz, ah.start, ah.end)


def arm_missing(eng: RuleHost, ctx: Ctx) -> None:
    """At start: residents without a timer (new install) are watched from now."""
    for rid in eng.inactivity_hours:
        if eng.rs.timer_get(f"inact|{rid}") is None:
            eng.rs.timer_arm(f"inact|{rid}", "inact", _due(eng, rid, ctx.now), ctx.now, {"last_ms": ctx.now})


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    rid = dev.resident_id
    if not facts.activity or rid is None or rid not in eng.inactivity_hours:
        return
    tkey = f"inact|{rid}"
    cur = eng.rs.timer_get(tkey)
    if cur is not None and int(cur[1].get("last_ms", 0)) >= res.ts_ms:
        return  # an older reading (late delivery) does not move the window back
    eng.rs.timer_arm(tkey, "inact", _due(eng, rid, res.ts_ms), ctx.now, {"last_ms": res.ts_ms}, replace=True)
    eng.clear(ctx, f"resident|{rid}|{TYPE}", res.ts_ms, "activity", hold_s=0)


def fire(eng: RuleHost, ctx: Ctx, rid: str, due: int, data: dict[str, Any]) -> None:
    if rid not in eng.inactivity_hours:
        return
    trig = inc.Trigger(
        key=f"resident|{rid}|{TYPE}",
        category="eldercare",
        type=TYPE,
        severity="major",
        ts_ms=due,
        devices=[d for d in eng.resident_devices.get(rid, []) if eng.devices[d].type in activity_types()],
        location=eng.resident_location(rid),
        resident_id=rid,
        detail={"hours": eng.inactivity_hours[rid], "last_activity_ms": data.get("last_ms")},
    )
    eng.incidents.raise_or_repeat(ctx.conn, ctx.result, trig, ctx.now)
