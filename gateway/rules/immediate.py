"""Immediate rules: one reading is enough.

A canonical value ``True`` (in a STATE or an EVENT reading) raises or repeats the incident of
(device, type); ``False`` in a STATE reading is a recovery (auto-clear after the hold; recorded
only for life-safety types). Zigbee2MQTT puts ``sos``/``fall``/``smoke`` booleans in STATE
readings and button presses in EVENT ``{"sos": True}``: both trigger.

One person, one alarm: a resident's wall button and wristband (or two buttons, two fall radars)
going off together are one emergency. A life-safety alarm from a device of a resident counts on
the open incident of the same type that another of the resident's devices raised within
``life_safety_merge_s`` (:func:`open_key`): the incident lists every device, each press is a
``repeated`` event, and the ticket loop - which dispatches on ``created`` - dispatches it once.
Different residents, and alarms further apart, stay separate incidents.
"""

from __future__ import annotations

from drivers.base import STATE
from gateway.core.contract import Resolved
from gateway.core.incidents import LIFE_SAFETY_TYPES
from gateway.rules import correlation
from gateway.rules.base import Ctx, Dev, Facts
from gateway.rules.host import RuleHost

# value key -> (incident type, category (None = the device's), severity)
IMMEDIATE: dict[str, tuple[str, str | None, str]] = {
    "sos": ("sos", "eldercare", "critical"),
    "fall": ("fall", "eldercare", "major"),  # raised to critical by fall-then-no-motion
    "smoke": ("smoke", "security", "critical"),
    "gas": ("gas", "security", "critical"),
    "water_leak": ("water_leak", "security", "major"),
    "door_forced": ("door_forced", "security", "major"),
    "tamper": ("tamper", None, "minor"),
    "gate_fault": ("gate_fault", "parking", "minor"),
    "image_unusable": ("camera_unusable", "device_health", "minor"),  # gateway/vision: covered, fog, glare
}


def open_key(eng: RuleHost, ctx: Ctx, dev: Dev, typ: str, ts_ms: int) -> str:
    """The key an alarm of ``dev`` counts on: its own, unless it is a resident's life-safety alarm
    and another device of the resident holds an open incident of ``typ`` triggered from
    ``window`` before its first to ``window`` after its last trigger."""
    own = eng.key(dev.id, typ)
    window = eng.settings.life_safety_merge_s * 1000
    if dev.resident_id is None or not window or typ not in LIFE_SAFETY_TYPES or eng.is_open(ctx, own):
        return own
    for other in eng.resident_devices.get(dev.resident_id, ()):
        key = eng.key(other, typ)
        if other == dev.id or not eng.is_open(ctx, key):
            continue
        row = ctx.conn.execute(
            "SELECT first_ms, last_ms FROM incidents WHERE open_key=? AND resident_id=?", (key, dev.resident_id)
        ).fetchone()
        if row is not None and row[0] - window <= ts_ms <= row[1] + window:
            return key
    return own


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    vals = res.reading.values
    # Most readings carry none of these keys (a door's contact and battery): looked for among the
    # reading's few values first; the evaluation itself keeps the table's order.
    for k in vals:
        if k in IMMEDIATE:
            break
    else:
        return
    for k, (typ, cat, sev) in IMMEDIATE.items():
        v = vals.get(k)
        if v is True:
            trig = eng.trigger(dev, typ, cat or dev.category, sev, res, res.ts_ms)
            trig.key = open_key(eng, ctx, dev, typ, res.ts_ms)
            raised = eng.raise_(ctx, trig, dev)
            if typ == "fall" and raised is not None:
                correlation.on_fall(eng, ctx, dev, res, trig.key)
        elif v is False and res.reading.kind == STATE:
            eng.clear(ctx, eng.key(dev.id, typ), res.ts_ms, f"{k}_false")
