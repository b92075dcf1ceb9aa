"""Building and compound offline groups: one incident naming the smallest scope that explains a
silence (docs/rules.md, "Grouping").

What a duty guard acts on is *where* to go: a building's power or network (its riser, its
switch), or the whole compound's. So:

- A building is **dark** when at least max(``group_min_devices``, ``group_fraction`` x its
  members) of its devices with a liveness check went offline within ``group_window_s`` (or its
  ``building_offline`` incident is open). Each dark building gets its own ``building_offline``,
  even when it holds most of the compound's devices, and even when several buildings are dark
  at once (a storm across two buildings is two incidents, one per building).
- The compound is named only when the silence is wider than its dark buildings: the compound's
  own threshold is met, at least two buildings are dark (or the only one it has), and devices
  outside the dark buildings are silent too - the compound's own devices (those located by a
  parking space) or devices of other buildings. Then one ``compound_offline`` incident carries
  the per-building breakdown, and the open ``building_offline`` incidents of that compound are
  folded into it (auto-cleared ``grouped:<id>``, as device incidents are), so an outage never
  keeps a building and its compound incident open side by side. While it is open no building
  incident forms in that compound.

A group incident's detail says how many devices (``offline_count`` of ``of``), where (ids and
names) and since when (``since_ms``: the earliest of its devices going offline, at formation);
the counts follow as late devices join.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from gateway.core import incidents as inc
from gateway.rules.base import Ctx, Dev
from gateway.rules.host import RuleHost

DEVICE_TYPE = "device_offline"
GROUP_TYPES = frozenset({"building_offline", "compound_offline"})


def offline_devices(ctx: Ctx) -> dict[str, int]:
    """Device id -> when it went offline, for every device offline now (memo for this call)."""
    off = ctx.cache.get("offline")
    if off is None:
        off = {
            d: int(t or 0)
            for d, t in ctx.conn.execute("SELECT device_id, online_changed_ms FROM devices WHERE online=0")
        }
        ctx.cache["offline"] = off
    return off


def open_id(ctx: Ctx, key: str) -> str | None:
    row = ctx.conn.execute("SELECT id FROM incidents WHERE open_key=?", (key,)).fetchone()
    return None if row is None else str(row[0])


def fold(eng: RuleHost, ctx: Ctx, devices: list[str], group_id: str) -> None:
    """The devices are explained by a group: no hold, no incident of their own."""
    for d in devices:
        eng.rs.timer_cancel(f"offline|{d}")
        key = eng.key(d, DEVICE_TYPE)
        if open_id(ctx, key) is not None:
            eng.incidents.auto_clear(ctx.conn, ctx.result, key, ctx.now, f"grouped:{group_id}", ctx.now)


def _need(eng: RuleHost, members: int) -> int:
    return max(eng.settings.group_min_devices, math.ceil(eng.settings.group_fraction * members))


def _key(level: str, scope: str) -> str:
    return f"group|{level}|{scope}"


@dataclass(slots=True)
class _Silence:
    """The silent devices of one compound (or of one building outside any compound)."""

    by_building: dict[str | None, list[str]] = field(default_factory=dict)  # None: not in a building
    open_buildings: dict[str, str] = field(default_factory=dict)  # building -> open group incident
    dark: list[str] = field(default_factory=list)

    def devices(self) -> list[str]:
        return [d for ds in self.by_building.values() for d in ds]


def _silence(eng: RuleHost, ctx: Ctx, members: list[str]) -> _Silence:
    """Counted: devices offline since the window began, and every offline device of a building
    whose incident is open (its outage may have begun before the window)."""
    off = offline_devices(ctx)
    since = ctx.now - eng.settings.group_window_s * 1000
    offline_by_b: dict[str | None, list[str]] = {}
    for m in members:
        if m in off:
            offline_by_b.setdefault(eng.devices[m].loc.building, []).append(m)
    view = _Silence()
    for b in offline_by_b:
        gid = None if b is None else open_id(ctx, _key("building", b))
        if gid is not None:
            view.open_buildings[str(b)] = gid
    for b, ds in offline_by_b.items():
        counted = ds if b in view.open_buildings else [d for d in ds if off[d] >= since]
        if not counted:
            continue
        view.by_building[b] = counted
        if b is None:
            continue
        size = len(eng.building_members.get(b, ()))
        if size >= eng.settings.group_min_devices and (b in view.open_buildings or len(counted) >= _need(eng, size)):
            view.dark.append(b)
    return view


def _compound_wide(eng: RuleHost, compound: str, view: _Silence) -> bool:
    members = eng.compound_members[compound]
    if len(members) < eng.settings.group_min_devices or len(view.devices()) < _need(eng, len(members)):
        return False
    buildings = {eng.devices[m].loc.building for m in members} - {None}
    if len(view.dark) < min(2, len(buildings)):
        return False
    return any(b not in view.dark for b in view.by_building)  # silence beyond the dark buildings


# --- detail ----------------------------------------------------------------------------------
def _name(found: Any, fallback: str) -> str:  # Any: a config model with a name, or None
    return str(found.name) if found is not None else fallback


def _counts(eng: RuleHost, level: str, devices: list[str]) -> dict[str, Any]:
    """The detail fields that follow the group's device list as late devices join."""
    out: dict[str, Any] = {"offline_count": len(devices)}
    if level == "compound":
        per: dict[str, int] = {}
        outside = 0
        for d in devices:
            b = eng.devices[d].loc.building if d in eng.devices else None
            if b is None:
                outside += 1
            else:
                per[b] = per.get(b, 0) + 1
        out["buildings"] = [
            {
                "building": b,
                "name": _name(eng.cfg.building(b), b),
                "offline_count": n,
                "of": len(eng.building_members.get(b, ())),
            }
            for b, n in sorted(per.items())
        ]
        out["outside_buildings"] = outside
    return out


def _detail(eng: RuleHost, ctx: Ctx, level: str, scope: str, devices: list[str]) -> dict[str, Any]:
    members = eng.compound_members if level == "compound" else eng.building_members
    compound = scope if level == "compound" else eng.devices[devices[0]].loc.compound
    out: dict[str, Any] = {"cause": level}
    if level == "building":
        out |= {"building": scope, "building_name": _name(eng.cfg.building(scope), scope)}
    if compound is not None:
        out |= {"compound": compound, "compound_name": _name(eng.cfg.compound(compound), compound)}
    off = offline_devices(ctx)
    out["since_ms"] = min((off[d] for d in devices if d in off), default=ctx.now)  # the outage's start
    return out | {"of": len(members[scope])} | _counts(eng, level, devices)


# --- forming and extending -------------------------------------------------------------------
def join(eng: RuleHost, ctx: Ctx, group_id: str, devices: list[str], ts_ms: int) -> None:
    """Add devices to a group incident (any kind); a building/compound group's counts follow."""
    row = ctx.conn.execute("SELECT type FROM incidents WHERE id=?", (group_id,)).fetchone()
    if row is None:
        return
    follow = functools.partial(_counts, eng, row[0].removesuffix("_offline")) if row[0] in GROUP_TYPES else None
    eng.incidents.add_devices(ctx.conn, ctx.result, group_id, devices, ts_ms, ctx.now, detail=follow)


def _raise(eng: RuleHost, ctx: Ctx, level: str, scope: str, devices: list[str]) -> str | None:
    sample = eng.devices[devices[0]].loc
    loc = inc.Location(
        grid=sample.grid if level == "building" else None,
        compound=scope if level == "compound" else sample.compound,
        building=scope if level == "building" else None,
    )
    raised = eng.raise_(
        ctx,
        inc.Trigger(
            key=_key(level, scope),
            category="device_health",
            type=f"{level}_offline",
            severity="major",
            ts_ms=ctx.now,
            devices=devices,
            location=loc,
            detail=_detail(eng, ctx, level, scope, devices),
        ),
    )
    if raised is None:
        return None
    fold(eng, ctx, devices, raised.incident_id)
    return raised.incident_id


def _raise_compound(eng: RuleHost, ctx: Ctx, compound: str, view: _Silence) -> str | None:
    """The compound incident takes over its open building incidents: one outage, one incident."""
    gid = _raise(eng, ctx, "compound", compound, view.devices())
    if gid is not None:
        for b in view.open_buildings:
            eng.incidents.auto_clear(ctx.conn, ctx.result, _key("building", b), ctx.now, f"grouped:{gid}", ctx.now)
    return gid


def check(eng: RuleHost, ctx: Ctx, dev: Dev) -> str | None:
    """Form or extend the building/compound group explaining ``dev`` (offline); its incident id."""
    compound = dev.loc.compound if dev.loc.compound in eng.compound_members else None
    building = dev.loc.building if dev.loc.building in eng.building_members else None
    if compound is None and building is None:
        return None
    gid = None if compound is None else open_id(ctx, _key("compound", compound))
    if gid is None:
        view = _silence(eng, ctx, eng.compound_members[compound] if compound else eng.building_members[str(building)])
        if compound is not None and _compound_wide(eng, compound, view):
            return _raise_compound(eng, ctx, compound, view)
        if building is None:
            return None
        gid = view.open_buildings.get(building)
        if gid is None:
            return _raise(eng, ctx, "building", building, view.by_building[building]) if building in view.dark else None
    if dev.id in offline_devices(ctx):
        join(eng, ctx, gid, [dev.id], ctx.now)
        fold(eng, ctx, [dev.id], gid)
    return gid


def explained(ctx: Ctx, dev: Dev) -> str | None:
    """The open compound or building group incident covering ``dev``, if any."""
    for level, scope in (("compound", dev.loc.compound), ("building", dev.loc.building)):
        if scope is not None:
            found = open_id(ctx, _key(level, scope))
            if found is not None:
                return found
    return None


def recovery(eng: RuleHost, ctx: Ctx, dev: Dev, ts: int) -> None:
    """``dev`` is back: a group whose offline members fell below its threshold clears."""
    off = offline_devices(ctx)
    for level, scope, members in (
        ("compound", dev.loc.compound, eng.compound_members),
        ("building", dev.loc.building, eng.building_members),
    ):
        if scope is None or scope not in members:
            continue
        key = _key(level, scope)
        if eng.is_open(ctx, key) and sum(1 for m in members[scope] if m in off) < _need(eng, len(members[scope])):
            eng.clear(ctx, key, ts, "devices_back_online")
