"""Duration rules: a condition that must last N before it is an incident.

- Door held open: ``contact`` False starts a durable timer at the reading's time; True cancels it
  (and auto-clears an open incident). Limit: ``door_open_max_s`` (type / device override).
- Parking: ``vehicle_present`` True on a fire-lane space (``fire_lane_max_min``), a no-parking
  space (``no_parking_max_min``) or a space with ``max_stay_min`` starts a timer; False cancels.

Timers are rows in ``timers`` (due = reading time + limit), so a door open since 10:00 with a
5-min limit raises at 10:05 even if the gateway restarted at 10:02, and a close received with a
time before the due time (e.g. queued in the broker while we were down) cancels it.
"""

from __future__ import annotations

from typing import Any

from drivers.base import STATE
from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, Facts, reading_dict
from gateway.rules.host import RuleHost

PARKING = {  # space kind -> (incident type, settings field, severity, unit ms)
    "fire_lane": ("parking_fire_lane", "fire_lane_max_min", "major"),
    "no_parking": ("parking_no_parking", "no_parking_max_min", "minor"),
    "normal": ("parking_overstay", "max_stay_min", "warning"),
    "reserved": ("parking_overstay", "max_stay_min", "warning"),
}


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    if res.reading.kind != STATE:
        return
    vals = res.reading.values
    contact = vals.get("contact")
    limit_s = dev.settings.door_open_max_s
    if isinstance(contact, bool) and limit_s:
        tkey = f"door|{dev.id}"
        if contact is False:
            # Already armed (the door still open): kept as is, nothing built, encoded or written.
            if tkey not in eng.rs.timers:
                eng.rs.timer_arm(
                    tkey,
                    "door",
                    res.ts_ms + limit_s * 1000,
                    ctx.now,
                    {
                        "since": res.ts_ms,
                        "limit_s": limit_s,
                        "reading": reading_dict(dev.id, res.ts_ms, res.reading.kind, vals),
                    },
                )
        else:
            eng.rs.timer_cancel(tkey)
            eng.clear(ctx, eng.key(dev.id, "door_held_open"), res.ts_ms, "door_closed")
    occupied = vals.get("vehicle_present")
    if isinstance(occupied, bool) and dev.space_kind in PARKING:
        typ, field, _sev = PARKING[dev.space_kind]
        limit_min = getattr(dev.settings, field)
        tkey = f"park|{dev.id}"
        if occupied and limit_min:
            if tkey in eng.rs.timers:  # still occupied: the first arming is kept
                return
            eng.rs.timer_arm(
                tkey,
                "park",
                res.ts_ms + int(limit_min * 60_000),
                ctx.now,
                {
                    "since": res.ts_ms,
                    "limit_min": limit_min,
                    "type": typ,
                    "reading": reading_dict(dev.id, res.ts_ms, res.reading.kind, vals),
                },
            )
        elif not occupied:
            eng.rs.timer_cancel(tkey)
            eng.clear(ctx, eng.key(dev.id, typ), res.ts_ms, "vehicle_left")


def fire_door(eng: RuleHost, ctx: Ctx, dev_id: str, due: int, data: dict[str, Any]) -> None:
    dev = eng.devices.get(dev_id)
    if dev is None:
        return
    trig = eng.trigger(
        dev,
        "door_held_open",
        dev.category,
        "minor",
        None,
        due,
        open_since_ms=data.get("since"),
        limit_s=data.get("limit_s"),
    )
    trig.reading = data.get("reading")
    eng.raise_(ctx, trig, dev)


def fire_park(eng: RuleHost, ctx: Ctx, dev_id: str, due: int, data: dict[str, Any]) -> None:
    dev = eng.devices.get(dev_id)
    if dev is None or dev.space_kind not in PARKING:
        return
    typ, _field, sev = PARKING[dev.space_kind]
    trig = eng.trigger(
        dev, typ, "parking", sev, None, due, occupied_since_ms=data.get("since"), limit_min=data.get("limit_min")
    )
    trig.reading = data.get("reading")
    eng.raise_(ctx, trig, dev)
