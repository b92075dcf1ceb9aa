"""/api/v1 devices, site, scorecard, feed, me; /healthz, /readyz, /metrics."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import StringConstraints

from gateway.api import access, db, ticketing
from gateway.api.auth import Principal
from gateway.api.deps import ctx_of, require
from gateway.api.device_views import static_view, static_views, visible_devices
from gateway.api.fastjson import FastJSONResponse
from gateway.api.metrics import render_metrics
from gateway.api.models import DeadLetter, Device, FeedPage, Me, Unconfigured
from gateway.core import store as st

if TYPE_CHECKING:
    import edge_config
    from edge_config import SiteConfig
    from gateway.app import Gateway

router = APIRouter()
R: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token"},
    403: {"description": "role or scope refused"},
}
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
DeviceId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
FEED_MAX = 1000


# --- devices ------------------------------------------------------------------------------------


_DYNAMIC = ("online", "online_reason", "online_changed_ms", "last_seen_ms", "battery")


def _with_state(view: dict[str, Any], row: dict[str, Any] | None) -> dict[str, Any]:
    out = dict(view)
    for k in _DYNAMIC:
        out[k] = row[k] if row is not None else None
    out["values"] = row["values"] if row is not None else None
    return out


def device_view(p: Principal, cfg: SiteConfig, d: edge_config.Device, row: dict[str, Any] | None) -> dict[str, Any]:
    return _with_state(static_view(p, static_views(cfg), d), row)


@router.get(
    "/api/v1/devices",
    tags=["devices"],
    response_model=list[Device],
    response_class=FastJSONResponse,
    summary="Devices and their state",
)
async def list_devices(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.read"))],
    building: Annotated[Name | None, Query()] = None,
    online: Annotated[bool | None, Query()] = None,
    type: Annotated[Name | None, Query()] = None,
) -> Response:
    ctx = ctx_of(request)
    views = list(visible_devices(p, ctx.cfg).values())
    if building is not None:
        views = [v for v in views if v.get("building") == building]
    if type is not None:
        views = [v for v in views if v.get("type") == type]
    rows = {r["device_id"]: r for r in await ctx.readers.run(db.device_rows, None)}
    out = [_with_state(v, rows.get(v["id"])) for v in views]
    if online is not None:
        out = [o for o in out if o["online"] is online]
    return FastJSONResponse(out)  # built from plain dicts: skip re-validating 1,000 devices per request


@router.get(
    "/api/v1/devices/dead-letters",
    tags=["devices"],
    response_model=list[DeadLetter],
    summary="Messages that could not be used (installers)",
    responses=R,
)
async def list_dead_letters(
    request: Request,
    p: Annotated[Principal, Depends(require("devices.installer"))],
    reason: Annotated[Name | None, Query()] = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**53, description="id of the last item seen")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    return await ctx_of(request).readers.run(db.dead_letters, cursor, limit, reason)


@router.get(
    "/api/v1/devices/unconfigured",
    tags=["devices"],
    response_model=list[Unconfigured],
    summary="Devices seen on the broker but not in the config (installers adopt them)",
    responses=R,
)
async def list_unconfigured(
    request: Request, p: Annotated[Principal, Depends(require("devices.installer"))]
) -> list[Any]:
    return await ctx_of(request).readers.run(db.unconfigured)


@router.get("/api/v1/devices/{device_id}", tags=["devices"], response_model=Device, summary="One device", responses=R)
async def get_device(
    request: Request, device_id: DeviceId, p: Annotated[Principal, Depends(require("devices.read"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    d = ctx.cfg.device(device_id)
    if d is None:
        raise HTTPException(404, "no such device")
    if not access.device_visible(p, ctx.cfg, device_id):
        raise HTTPException(403, "this device is outside your scope or in a resident's home")
    rows = await ctx.readers.run(db.device_rows, [device_id])
    return device_view(p, ctx.cfg, d, rows[0] if rows else None)


# --- site, scorecard, me ------------------------------------------------------------------------


@router.get("/api/v1/site", tags=["site"], summary="Community topology from the config (no personal data)")
async def site(request: Request, p: Annotated[Principal, Depends(require("site.read"))]) -> dict[str, Any]:
    cfg = ctx_of(request).cfg
    s = cfg.site

    def visible(grid: str | None, compound: str | None) -> bool:
        return access.in_scope(p, grid, compound)

    compounds = []
    for c in s.compounds:
        buildings = [
            {
                "id": b.id,
                "name": b.name,
                "grid": b.grid,
                "floors": b.floors,
                "units": [{"id": u.id, "name": u.name, "households": u.households} for u in b.units],
            }
            for b in c.buildings
            if visible(b.grid, c.id)
        ]
        if buildings or visible(None, c.id):
            compounds.append(
                {
                    "id": c.id,
                    "name": c.name,
                    "property_company": {"name": c.property_company.name, "phone": c.property_company.phone},
                    "buildings": buildings,
                }
            )
    return {
        "gateway": {"id": cfg.gateway.id, "name": cfg.gateway.name, "timezone": cfg.gateway.timezone},
        "street": {"id": s.street.id, "name": s.street.name},
        "community": {"id": s.community.id, "name": s.community.name, "households": s.community.households},
        "grids": [{"id": g.id, "name": g.name, "households": g.households} for g in s.grids],
        "compounds": compounds,
        "parking_areas": [
            {
                "id": a.id,
                "name": a.name,
                "compound": a.compound,
                "spaces": [{"id": sp.id, "kind": sp.kind, "max_stay_min": sp.max_stay_min} for sp in a.spaces],
            }
            for a in s.parking_areas
            if visible(None, a.compound)
        ],
    }


@router.get("/api/v1/scorecard", tags=["site"], summary="Property-company scorecard (ticket loop figures)", responses=R)
async def scorecard(
    request: Request,
    p: Annotated[Principal, Depends(require("scorecard.read"))],
    period: Annotated[
        str | None,
        Query(pattern=r"^[0-9]{4}(-(0[1-9]|1[0-2])|-Q[1-4])?$", description="YYYY-MM, YYYY-Qn or YYYY; default: now"),
    ] = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    if period is None:
        now = dt.datetime.now(ZoneInfo(ctx.cfg.gateway.timezone))
        period = f"{now.year}-Q{(now.month - 1) // 3 + 1}"
    rows = await ctx.readers.run(ticketing.scorecard_rows, ctx.cfg, period)
    return {"period": period, "rows": rows}


@router.get("/api/v1/me", tags=["site"], response_model=Me, summary="Who this token is")
async def me(request: Request, p: Annotated[Principal, Depends(require("me"))]) -> dict[str, Any]:
    cfg = ctx_of(request).cfg
    return {
        "token_id": p.token_id,
        "name": p.name,
        "role": p.role,
        "grids": sorted(p.grids),
        "compounds": sorted(p.compounds),
        "personal_data": p.role in access.PERSONAL_ROLES,
        "gateway": cfg.gateway.id,
        "gateway_name": cfg.gateway.name,
        "language": cfg.gateway.language,
    }


# --- central platform feed ----------------------------------------------------------------------


def _feed(conn: sqlite3.Connection, p: Principal, cfg: SiteConfig, after: int, limit: int) -> dict[str, Any]:
    events = db.events_after(conn, after, limit)
    incs = db.get_incidents(conn, [e["incident_id"] for e in events])
    items = []
    for e in events:
        row = incs.get(e["incident_id"])
        if row is None or not access.incident_visible(p, row, cfg):
            continue
        item = access.present_event(p, e, row)
        item["incident"] = {
            k: row.get(k)
            for k in ("category", "type", "severity", "state", "life_safety", "grid", "compound", "created_ms")
        }
        if not access.is_personal(row) or p.role in access.PERSONAL_ROLES:
            item["incident"].update(
                {"building": row.get("building"), "unit": row.get("unit"), "space": row.get("space")}
            )
        items.append(item)
    nxt = events[-1]["seq"] if events else after
    return {"items": items, "next_cursor": nxt, "has_more": len(events) == limit}


@router.get(
    "/api/v1/feed/incidents",
    tags=["feed"],
    response_model=FeedPage,
    summary="Every incident change in commit order (creation and each transition), resumable by cursor",
    responses=R,
)
async def feed(
    request: Request,
    p: Annotated[Principal, Depends(require("feed.read"))],
    after: Annotated[
        int, Query(ge=0, le=2**53, description="The last next_cursor you stored (0 = from the start).")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=FEED_MAX)] = 100,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    return await ctx.readers.run(_feed, p, ctx.cfg, after, limit)


# --- health ------------------------------------------------------------------------------------


def _access_log(conn: sqlite3.Connection, after: int, limit: int) -> dict[str, Any]:
    rows = conn.execute(
        "SELECT rowid, ts_ms, token_id, role, reason, incident_id, resident_id, fields, via FROM access_log"
        " WHERE rowid > ? ORDER BY rowid LIMIT ?",
        (after, limit),
    ).fetchall()
    items = [
        {
            "id": r[0],
            "ts_ms": r[1],
            "token_id": r[2],
            "role": r[3],
            "reason": r[4],
            "incident_id": r[5],
            "resident_id": r[6],
            "fields": json.loads(r[7]) if r[7] else [],
            "via": r[8],
        }
        for r in rows
    ]
    return {"items": items, "next_cursor": items[-1]["id"] if items else after, "has_more": len(items) == limit}


@router.get(
    "/api/v1/access-log",
    tags=["site"],
    summary="Every release of residents' personal details or home location (installers only)",
    responses=R,
)
async def access_log(
    request: Request,
    p: Annotated[Principal, Depends(require("access_log.read"))],
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    return await ctx.readers.run(_access_log, after, limit)


@router.post(
    "/api/v1/residents/{resident_id}/forget",
    tags=["site"],
    summary="Remove or anonymise one resident's personal data everywhere it lives (installers only)",
    responses=R,
)
async def forget_resident(
    request: Request,
    p: Annotated[Principal, Depends(require("resident.forget"))],
    resident_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")],
) -> dict[str, Any]:
    from gateway import privacy

    ctx = ctx_of(request)
    cfg = ctx.cfg
    rep = await ctx.write(lambda conn, result, now: privacy.forget_resident(conn, cfg, resident_id, now))
    if cfg.cameras.cameras or privacy.snapshot_dir(cfg).exists():
        live = getattr(ctx.gw.cameras, "snapshots", None)
        await asyncio.to_thread(privacy.forget_snapshots, rep, privacy.snapshot_dir(cfg), live)
    return {"resident_id": resident_id, "stand_in": rep.token, "changed": dict(rep.changed), "report": rep.lines()}


@router.get("/healthz", tags=["health"], summary="Liveness: the process answers (no token)")
async def healthz(request: Request) -> dict[str, str]:
    return {"status": "ok", "gateway": ctx_of(request).cfg.gateway.id}


def _ready_checks(conn: sqlite3.Connection, gw: Gateway) -> dict[str, Any]:
    health = gw.health()
    cfg = gw.cfg
    checks: dict[str, Any] = {
        "broker": {"ok": bool(health["broker_connected"]), "sessions": health["sessions"]},
        "store": {"ok": bool(health["store_writable"]), "error": health["store_error"]},
        "committed_total": health["committed_total"],
    }
    lim = cfg.api.readiness
    try:
        from cloud_sync.status import sync_status
    except ImportError:
        sync_status = None  # type: ignore[assignment]
    if cfg.sync.enabled and sync_status is not None:
        s = sync_status(conn)
        ok = s["backlog_points"] <= lim.sync_backlog_max_points and (s["oldest_unsent_age_s"] or 0) <= (
            lim.sync_oldest_max_s
        )
        checks["sync"] = {
            "ok": ok,
            "backlog_points": s["backlog_points"],
            "oldest_unsent_age_s": s["oldest_unsent_age_s"],
            "last_error": s["last_error"],
            "limits": {"backlog_points": lim.sync_backlog_max_points, "oldest_unsent_s": lim.sync_oldest_max_s},
        }
    else:
        checks["sync"] = {"ok": True, "enabled": False}
    checks["ready"] = all(v["ok"] for v in checks.values() if isinstance(v, dict) and "ok" in v)
    checks["checked_ms"] = st.now_ms()
    return checks


@router.get(
    "/readyz",
    tags=["health"],
    summary="Readiness: broker connected, store writable, sync backlog within bounds (503 if not)",
    responses={**R, 503: {"description": "not ready; the body says why"}},
)
async def readyz(request: Request, p: Annotated[Principal, Depends(require("health.read"))]) -> Response:
    ctx = ctx_of(request)
    checks = await ctx.readers.run(_ready_checks, ctx.gw)
    return FastJSONResponse(checks, status_code=200 if checks["ready"] else 503)


@router.get(
    "/metrics",
    tags=["health"],
    summary="Prometheus metrics",
    responses={**R, 200: {"content": {"text/plain": {}}}},
    response_class=Response,
)
async def metrics(request: Request, p: Annotated[Principal, Depends(require("health.read"))]) -> Response:
    ctx = ctx_of(request)
    throttled = request.app.state.governor.throttled
    body = await ctx.readers.run(render_metrics, ctx.gw, len(ctx.hub.clients), throttled)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
