"""Immediate rules: one reading is enough.

A canonical value ``True`` (in a STATE or an EVENT reading) raises or repeats the incident of
(device, type); ``False`` in a STATE reading is a recovery (auto-clear after the hold; recorded
only for life-safety types). Zigbee2MQTT puts ``sos``/``fall``/``smoke`` booleans in STATE
readings and button presses in EVENT ``{"sos": True}``: both trigger.
"""

from __future__ import annotations

from drivers.base import STATE
from gateway.core.contract import Resolved
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
}


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    vals = res.reading.values
    for k, (typ, cat, sev) in IMMEDIATE.items():
        v = vals.get(k)
        if v is True:
            raised = eng.raise_(ctx, eng.trigger(dev, typ, cat or dev.category, sev, res, res.ts_ms), dev)
            if typ == "fall" and raised is not None:
                correlation.on_fall(eng, ctx, dev, res)
        elif v is False and res.reading.kind == STATE:
            eng.clear(ctx, eng.key(dev.id, typ), res.ts_ms, f"{k}_false")
