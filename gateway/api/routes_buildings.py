"""/api/v1/buildings: per compound, its buildings with their units, where each open incident is
(floor and unit), and device health as counts (online, offline, never heard, battery low) instead
of a card per device; the devices themselves are a page away (/api/v1/devices/page?building=).

Elder-care incidents are placed only for the personal-data roles (their place is a resident's
home); everyone else gets how many there are in the building's grid scope, not where."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Request

from gateway.api import access, db, device_index
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.device_views import visible_devices
from gateway.core import incidents as inc

if TYPE_CHECKING:
    from edge_config import SiteConfig

router = APIRouter(prefix="/api/v1/buildings", tags=["buildings"])


def _read(conn: sqlite3.Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    states = sorted(inc.OPEN_STATES)
    select, extra = db._select(conn)
    rows = db._rows(
        conn,
        f"{select} WHERE incidents.state IN ({','.join('?' * len(states))}) AND incidents.building IS NOT NULL",
        states,
        extra,
    )
    return db.device_rows(conn), rows


def _floor(cfg: SiteConfig, devices: list[str]) -> int | None:
    for dev_id in devices:
        d = cfg.device(dev_id)
        if d is not None and d.location.floor is not None:
            return int(d.location.floor)
    return None


def _health(views: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]], cfg: SiteConfig) -> dict[str, Any]:
    """building -> counts of its devices this role may see."""
    facts = device_index.facts(cfg)
    out: dict[str, dict[str, int]] = {}
    for dev_id, v in views.items():
        b = v.get("building")
        if b is None:
            continue
        h = out.setdefault(b, {"total": 0, "online": 0, "offline": 0, "unknown": 0, "battery_low": 0})
        row = rows.get(dev_id)
        online = row.get("online") if row is not None else None
        h["total"] += 1
        h["unknown" if online is None else "online" if online else "offline"] += 1
        if device_index.battery_low(facts.get(dev_id), row.get("battery") if row else None):
            h["battery_low"] += 1
    return out


@router.get("", summary="Buildings: open incidents by floor and unit, device health counts", responses=AUTH_ERRORS)
async def buildings(request: Request, p: Annotated[Principal, Depends(require("devices.read"))]) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    dev_rows, open_rows = await ctx.readers.run(_read)
    views = await ctx.readers.run(lambda _c: visible_devices(p, cfg))  # cached per config and scope
    health = await ctx.readers.run(lambda _c: _health(views, {r["device_id"]: r for r in dev_rows}, cfg))
    placed: dict[str, list[dict[str, Any]]] = {}
    hidden: dict[str, int] = {}
    for r in open_rows:
        if not access.incident_visible(p, r, cfg):
            continue
        v = access.present_incident(p, r, cfg, None)
        b = r["building"]
        if v.get("building") is None:  # a resident's home, not for this role
            hidden[b] = hidden.get(b, 0) + 1
            continue
        floor = (v.get("personal") or {}).get("floor") or _floor(cfg, list(r.get("devices") or []))
        placed.setdefault(b, []).append(
            {
                "id": v["id"],
                "category": v["category"],
                "type": v["type"],
                "severity": v["severity"],
                "state": v["state"],
                "unit": v.get("unit"),
                "floor": floor,
                "first_ms": v["first_ms"],
            }
        )
    compounds = []
    for c in cfg.site.compounds:
        blds = []
        for b in c.buildings:
            if not access.in_scope(p, b.grid, c.id):
                continue
            incs = sorted(placed.get(b.id, []), key=lambda i: (inc.severity_rank(i["severity"]), i["first_ms"]))
            blds.append(
                {
                    "id": b.id,
                    "name": b.name,
                    "grid": b.grid,
                    "floors": b.floors,
                    "units": [{"id": u.id, "name": u.name} for u in b.units],
                    "health": health.get(b.id, {"total": 0, "online": 0, "offline": 0, "unknown": 0, "battery_low": 0}),
                    "incidents": incs,
                    "hidden_incidents": hidden.get(b.id, 0),
                }
            )
        if blds:
            compounds.append({"id": c.id, "name": c.name, "buildings": blds})
    return {"compounds": compounds}
