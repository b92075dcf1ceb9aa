"""Offline detection with grouping by upstream cause.

The pipeline decides liveness (``StatusChange``: reason ``silent`` when a device is quieter than
its ``expected_interval_s``, ``availability`` from availability topics / last wills, ``bridge``
for ``bridge:<base>`` from ``zigbee2mqtt/bridge/state``) and persists it in ``devices``
(``online``, ``online_changed_ms``). This module turns it into incidents:

- A device going offline arms a durable hold timer (``offline_hold_s``) so a group can form
  first; if it is still offline when the timer fires and no open group incident explains it,
  ``device_offline`` (major for life-safety devices, else minor) is raised. Back online cancels
  the hold and auto-clears.
- Groups (one incident naming the cause, member devices listed, not one per device):
  ``bridge_offline`` (a Zigbee2MQTT bridge reports offline: explains every zigbee2mqtt device),
  ``lorawan_gateway_silent`` (a LoRaWAN gateway id absent from all uplinks for
  ``lorawan_gateway_silent_s``: explains devices last heard only through silent gateways),
  ``building_offline`` / ``compound_offline`` (the smallest scope that explains the silence:
  see :mod:`gateway.rules.groups`). When a group forms, members' open ``device_offline``
  incidents are auto-cleared with reason ``grouped`` and the devices are added to the group
  incident.
- After a wall-clock step, ``silent`` marks are not trusted: the hold becomes the device's full
  expected interval, so a live device proves itself before anything is raised.
"""

from __future__ import annotations

from typing import Any

from gateway.core import incidents as inc
from gateway.core.contract import Resolved, StatusChange
from gateway.rules import groups
from gateway.rules.base import Ctx, Dev, Facts
from gateway.rules.host import RuleHost

TYPE = groups.DEVICE_TYPE


def on_status(eng: RuleHost, ctx: Ctx, ch: StatusChange) -> None:
    if ch.device_id.startswith("bridge:"):
        key = f"group|bridge|{ch.device_id}"
        if not ch.online:
            eng.raise_(
                ctx,
                inc.Trigger(
                    key=key,
                    category="device_health",
                    type="bridge_offline",
                    severity="major",
                    ts_ms=ch.ts_ms,
                    devices=[ch.device_id],
                    detail={"cause": "zigbee2mqtt_bridge", "bridge": ch.device_id},
                ),
            )
        else:
            eng.clear(ctx, key, ch.ts_ms, "bridge_online", hold_s=0)
        return
    dev = eng.devices.get(ch.device_id)
    if dev is None:
        return
    ctx.cache.pop("offline", None)
    tkey = f"offline|{dev.id}"
    if ch.online:
        eng.rs.timer_cancel(tkey)
        eng.clear(ctx, eng.key(dev.id, TYPE), ch.ts_ms, "back_online")
        groups.recovery(eng, ctx, dev, ch.ts_ms)
        return
    hold = eng.settings.offline_hold_s * 1000
    suspect = ch.reason == "silent" and ctx.now < eng.suspect_until
    if suspect and dev.expected_interval_s:
        hold = max(hold, int(dev.expected_interval_s * 1000))
    eng.rs.timer_arm(tkey, "offline", ctx.now + hold, ctx.now, {"since": ch.ts_ms, "reason": ch.reason}, replace=True)
    if not suspect:  # a silence produced by a clock step forms no group; the hold re-checks
        groups.check(eng, ctx, dev)


def _explained_by(eng: RuleHost, ctx: Ctx, dev: Dev) -> str | None:
    c = ctx.conn
    if dev.driver == "zigbee2mqtt":
        row = c.execute(
            "SELECT id FROM incidents WHERE open_key >= 'group|bridge|' AND open_key < 'group|bridge}' LIMIT 1"
        ).fetchone()
        if row is not None:
            return str(row[0])
    if dev.driver == "chirpstack":
        gws = eng.rs.get(f"ldev|{dev.id}") or []
        ids = [groups.open_id(ctx, f"group|lorawan|{gw}") for gw in gws]
        if ids and all(ids):
            return ids[0]
    return groups.explained(ctx, dev)


def fire(eng: RuleHost, ctx: Ctx, dev_id: str, due: int, data: dict[str, Any]) -> None:
    dev = eng.devices.get(dev_id)
    if dev is None:
        return
    row = ctx.conn.execute("SELECT online FROM devices WHERE device_id=?", (dev_id,)).fetchone()
    if row is None or row[0] != 0:
        return  # back online meanwhile
    group = _explained_by(eng, ctx, dev) or groups.check(eng, ctx, dev)
    if group is not None:
        groups.join(eng, ctx, group, [dev.id], due)
        return
    trig = eng.trigger(
        dev,
        TYPE,
        "device_health",
        "major" if dev.life_safety else "minor",
        None,
        int(data.get("since", due)),
        reason=data.get("reason"),
        expected_interval_s=dev.expected_interval_s,
    )
    eng.raise_(ctx, trig)


# --- LoRaWAN gateways ----------------------------------------------------------------------------
def on_reading(eng: RuleHost, ctx: Ctx, dev: Dev, res: Resolved, facts: Facts) -> None:
    if dev.driver != "chirpstack":
        return
    gws = res.reading.meta.get("gateway_ids")
    if not isinstance(gws, list) or not gws:
        return
    for gw in gws:
        gw = str(gw)
        eng.lgw_seen[gw] = max(eng.lgw_seen.get(gw, 0), res.rx_ms)
        if res.rx_ms - eng.lgw_written.get(gw, 0) >= 60_000:
            eng.rs.set(f"lgw|{gw}", eng.lgw_seen[gw], ctx.now)
            eng.lgw_written[gw] = eng.lgw_seen[gw]
        eng.clear(ctx, f"group|lorawan|{gw}", res.rx_ms, "gateway_heard", hold_s=0)
    t = tuple(sorted(str(g) for g in gws))
    if eng.ldev_written.get(dev.id) != t:
        eng.rs.set(f"ldev|{dev.id}", list(t), ctx.now)
        eng.ldev_written[dev.id] = t


def check_lorawan(eng: RuleHost, ctx: Ctx) -> None:
    if eng.detector.mono() - eng.boot_mono < eng.settings.startup_grace_s * 1000:
        return
    limit = eng.settings.lorawan_gateway_silent_s * 1000
    for gw, seen in list(eng.lgw_seen.items()):
        if ctx.now - seen <= limit:
            continue
        key = f"group|lorawan|{gw}"
        if eng.is_open(ctx, key):
            continue
        served = [d for d, g in eng.ldev_written.items() if gw in g]
        raised = eng.raise_(
            ctx,
            inc.Trigger(
                key=key,
                category="device_health",
                type="lorawan_gateway_silent",
                severity="major",
                ts_ms=ctx.now,
                devices=[f"lorawan:{gw}"],
                detail={"cause": "lorawan_gateway", "gateway": gw, "last_seen_ms": seen, "serves": len(served)},
            ),
        )
        if raised is not None:
            off = groups.offline_devices(ctx)
            groups.fold(eng, ctx, [d for d in served if d in off], raised.incident_id)
