"""Correlation rules: incidents that need more than one reading.

- Fall then no motion: a fall arms a durable timer (``fall_no_motion_s``); motion from the same
  home (the resident's devices; PIR, a door used, a button - not the radar's presence, which
  may be the person on the floor) cancels it; when it fires, the still-open fall incident
  becomes critical (event ``severity_changed``, reason ``no_motion_after_fall``).
- Wandering: an exit door of a resident flagged ``dementia`` opening outside the resident's
  active hours (night) raises ``wandering`` (key per resident).
- Repeated access denied: ``access_denied_max`` denials at one door within
  ``access_denied_window_s`` raise ``suspected_intrusion``; further denials repeat it.
"""

from __future__ import annotations

from typing import Any

from edge_config.device_types import door_types
from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, Facts, in_window
from gateway.rules.host import RuleHost


def on_fall(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, key: str) -> None:
    """``key``: the fall incident's open key (another radar's, when this fall merged into it)."""
    eng.rs.timer_arm(
        f"fallchk|{dev.id}",
        "fallchk",
        res.ts_ms + eng.settings.fall_no_motion_s * 1000,
        ctx.now,
        {"fall_ms": res.ts_ms, "resident": dev.resident_id, "key": key},
    )


def fire_fall(eng: RuleHost, ctx: Ctx, dev_id: str, due: int, data: dict[str, Any]) -> None:
    key = data.get("key") or eng.key(dev_id, "fall")  # timers armed before merging carry no key
    row = ctx.conn.execute("SELECT id FROM incidents WHERE open_key=?", (key,)).fetchone()
    if row is not None:
        eng.incidents.set_severity(ctx.conn, ctx.result, row[0], "critical", "no_motion_after_fall", due, ctx.now)


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    rid = dev.resident_id
    if facts.motion and rid is not None:
        for other in eng.resident_devices.get(rid, ()):
            if other != dev.id and eng.devices[other].type == "fall_radar":
                eng.rs.timer_cancel(f"fallchk|{other}")
    if facts.door_opened and rid is not None and dev.type in door_types():
        r = eng.cfg.resident(rid)
        if (
            r is not None
            and "dementia" in r.flags
            and not in_window(res.ts_ms, eng.tz, r.active_hours.start, r.active_hours.end)
        ):
            trig = eng.trigger(dev, "wandering", "eldercare", "critical", res, res.ts_ms)
            trig.key = f"resident|{rid}|wandering"
            eng.raise_(ctx, trig, dev)
    if res.reading.values.get("access_denied") is True and dev.settings.access_denied_max:
        s = dev.settings
        skey = f"deny|{dev.id}"
        window = s.access_denied_window_s * 1000
        times = [t for t in (eng.rs.get(skey) or []) if t > res.ts_ms - window]
        times = [*times, res.ts_ms][-max(s.access_denied_max, 1) * 2 :]
        eng.rs.set(skey, times, ctx.now)
        key = eng.key(dev.id, "suspected_intrusion")
        if len(times) >= s.access_denied_max or eng.is_open(ctx, key):
            trig = eng.trigger(
                dev,
                "suspected_intrusion",
                "security",
                "major",
                res,
                res.ts_ms,
                denied_in_window=len(times),
                window_s=s.access_denied_window_s,
            )
            eng.raise_(ctx, trig, dev)
