"""Threshold rules with debounce and hysteresis.

- Vitals (wearables): heart rate outside [heart_rate_low, heart_rate_high] or SpO2 below
  spo2_low for ``consecutive_readings`` readings in a row raises; the same number of normal
  readings in a row auto-clears. Counters are durable (``rule_state``), written only on change.
- Battery: ``battery`` <= ``battery_low_pct`` (or ``battery_low`` True) raises once (no repeats
  per report); it clears only at ``battery_low_pct + battery_clear_margin_pct``.
"""

from __future__ import annotations

from typing import Any

from gateway.core.contract import Resolved
from gateway.rules.base import Ctx, Dev, Facts
from gateway.rules.host import RuleHost


def _vital(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, typ: str, bad: bool) -> None:
    n = dev.settings.consecutive_readings
    skey = f"vit|{dev.id}|{typ}"
    old: dict[str, Any] = eng.rs.get(skey) or {"bad": 0, "good": n}  # shared with the cache: not mutated
    st = {"bad": old["bad"] + 1, "good": 0} if bad else {"bad": 0, "good": min(old["good"] + 1, n)}
    if st != old:
        eng.rs.set(skey, st, ctx.now)
    key = eng.key(dev.id, typ)
    if bad and st["bad"] >= n:
        eng.raise_(ctx, eng.trigger(dev, typ, "eldercare", "major", res, res.ts_ms, consecutive=st["bad"]), dev)
    elif not bad and st["good"] >= n and old["good"] < n:
        eng.clear(ctx, key, res.ts_ms, "normal_readings", hold_s=0)


def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    vals = res.reading.values
    s = dev.settings
    hr = vals.get("heart_rate")
    if isinstance(hr, int | float) and not isinstance(hr, bool) and (s.heart_rate_low or s.heart_rate_high):
        bad = (s.heart_rate_low is not None and hr < s.heart_rate_low) or (
            s.heart_rate_high is not None and hr > s.heart_rate_high
        )
        _vital(eng, ctx, dev, res, "heart_rate_abnormal", bad)
    spo2 = vals.get("spo2")
    if isinstance(spo2, int | float) and not isinstance(spo2, bool) and s.spo2_low is not None:
        _vital(eng, ctx, dev, res, "spo2_low", spo2 < s.spo2_low)
    low_pct = s.battery_low_pct
    if low_pct is None:
        return
    battery = vals.get("battery")
    key = eng.key(dev.id, "battery_low")
    low = vals.get("battery_low") is True or (isinstance(battery, int | float) and battery <= low_pct)
    if low:
        if not eng.is_open(ctx, key):
            eng.raise_(
                ctx,
                eng.trigger(dev, "battery_low", "device_health", "warning", res, res.ts_ms, threshold_pct=low_pct),
                dev,
            )
    elif isinstance(battery, int | float) and battery >= low_pct + s.battery_clear_margin_pct:
        eng.clear(ctx, key, res.ts_ms, "battery_ok", hold_s=0)
