"""Schedules: intrusion zones (``rules.intrusion_zones``) armed only in configured hours.

Motion, presence, a door opening or vibration from a zone device while the zone is armed (site
time zone, ``armed[].start/end/days``) raises one ``intrusion`` incident per zone (group key
``zone|<id>|intrusion``); further triggers repeat it and add their device. Outside the armed
hours nothing is raised.
"""

from __future__ import annotations

from gateway.core import incidents as inc
from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, Facts, in_window, reading_dict
from gateway.rules.host import RuleHost


def armed(eng: RuleHost, zone: object, ts_ms: int) -> bool:
    return any(in_window(ts_ms, eng.tz, w.start, w.end, w.days) for w in zone.armed)  # type: ignore[attr-defined]


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    if not dev.zones:
        return
    vals = res.reading.values
    hit = (
        vals.get("occupancy") is True
        or vals.get("presence") is True
        or vals.get("vibration") is True
        or facts.door_opened
    )
    if not hit:
        return
    for zone in dev.zones:
        if not armed(eng, zone, res.ts_ms):
            continue
        trig = inc.Trigger(
            key=f"zone|{zone.id}|intrusion",
            category="security",
            type="intrusion",
            severity=zone.severity,
            ts_ms=res.ts_ms,
            devices=[dev.id],
            location=dev.loc,
            reading=reading_dict(dev.id, res.ts_ms, res.reading.kind, vals),
            detail={"zone": zone.id},
        )
        eng.raise_(ctx, trig, dev)
