"""/api/v1/incidents: list, detail with timeline, actions, manual creation."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from pydantic import StringConstraints

from gateway.api import access, db, problems, ticketing
from gateway.api.auth import Principal
from gateway.api.deps import ctx_of, require
from gateway.api.fastjson import FastJSONResponse
from gateway.api.models import (
    ActionRequest,
    ActionResult,
    Category,
    IncidentDetail,
    IncidentPage,
    ManualIncident,
    Severity,
)
from gateway.core.contract import IncidentEvent

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.api.deps import ApiContext

router = APIRouter(prefix="/api/v1/incidents", tags=["incidents"])

IdStr = Annotated[str, Path(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")]
Name = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
StateQ = Annotated[str, StringConstraints(pattern=r"^[a-z_]{1,32}$")]
R: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token"},
    403: {"description": "role or scope refused"},
}


@router.get(
    "",
    response_model=IncidentPage,
    response_class=FastJSONResponse,
    summary="List incidents (newest first, cursor pagination)",
    responses=R,
)
async def list_incidents(
    request: Request,
    p: Annotated[Principal, Depends(require("incidents.read"))],
    state: Annotated[
        list[StateQ] | None, Query(description="States; 'open' and 'closed' stand for their groups.")
    ] = None,
    category: Annotated[list[Category] | None, Query()] = None,
    severity: Annotated[list[Severity] | None, Query()] = None,
    grid: Annotated[list[Name] | None, Query()] = None,
    compound: Annotated[list[Name] | None, Query()] = None,
    building: Annotated[list[Name] | None, Query()] = None,
    assignee: Annotated[Name | None, Query(description="Staff id the ticket is assigned to (ticket loop).")] = None,
    since_ms: Annotated[int | None, Query(ge=0, le=2**53, description="Last trigger at or after (epoch ms).")] = None,
    until_ms: Annotated[int | None, Query(ge=0, le=2**53, description="First trigger at or before (epoch ms).")] = None,
    cursor: Annotated[int | None, Query(ge=0, le=2**53, description="next_cursor of the previous page.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> Response:
    ctx = ctx_of(request)
    f = db.IncidentFilter(state, _l(category), _l(severity), grid, building, compound, assignee, since_ms, until_ms)
    rows, nxt = await ctx.readers.run(db.list_incidents, p, f, cursor, limit)
    release = access.Release()
    items = [access.present_incident(p, r, ctx.cfg, release) for r in rows]
    await ctx.log_release(p, release, "list")
    return FastJSONResponse({"items": items, "next_cursor": nxt})  # plain dicts: no re-validation per request


def _detail(conn: sqlite3.Connection, incident_id: str) -> tuple[dict[str, Any] | None, list[IncidentEvent]]:
    rows = db.get_incidents(conn, [incident_id])
    row = rows.get(incident_id)
    return row, (db.timeline(conn, incident_id) if row is not None else [])


async def visible_incident(request: Request, p: Principal, incident_id: str) -> dict[str, Any]:
    ctx = ctx_of(request)
    rows = await ctx.readers.run(db.get_incidents, [incident_id])
    row = rows.get(incident_id)
    if row is None:
        raise HTTPException(404, "no such incident")
    if not access.incident_visible(p, row, ctx.cfg):
        raise HTTPException(403, "this incident is outside your grids/compounds or was not escalated to you")
    return row


@router.get("/{incident_id}", response_model=IncidentDetail, summary="One incident with its timeline", responses=R)
async def get_incident(
    request: Request, incident_id: IdStr, p: Annotated[Principal, Depends(require("incidents.read"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    row, events = await ctx.readers.run(_detail, incident_id)
    if row is None:
        raise HTTPException(404, "no such incident")
    if not access.incident_visible(p, row, ctx.cfg):
        raise HTTPException(403, "this incident is outside your grids/compounds or was not escalated to you")
    release = access.Release()
    out = access.present_incident(p, row, ctx.cfg, release)
    out["timeline"] = [access.present_event(p, e, row) for e in events]
    out["allowed_actions"] = await _offers(ctx, p, row)
    if out.get("personal") and out["personal"].get("resident_id"):
        out["personal"]["home_devices"] = await ctx.readers.run(_home_devices, ctx.cfg, out["personal"]["resident_id"])
    await ctx.log_release(p, release, "detail")
    return out


def _home_devices(conn: sqlite3.Connection, cfg: SiteConfig, resident_id: str) -> list[dict[str, Any]]:
    """The last readings of the resident's devices (presence, last movement), for the elder-care
    card; released only with the rest of the personal view (same access-log row)."""
    devs = [d for d in cfg.devices if d.resident == resident_id]
    rows = {r["device_id"]: r for r in db.device_rows(conn, [d.id for d in devs])} if devs else {}
    last = db.last_activity(conn, resident_id)
    out = []
    for d in devs:
        r = rows.get(d.id, {})
        out.append(
            {
                "id": d.id,
                "name": d.name,
                "type": d.type,
                "online": r.get("online"),
                "last_seen_ms": r.get("last_seen_ms"),
                "values": r.get("values") or {},
                "last_activity_ms": last,
            }
        )
    return out


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


async def _offers(ctx: ApiContext, p: Principal, row: dict[str, Any]) -> list[dict[str, Any]]:
    worked = await ctx.readers.run(ticketing.worked_by, str(row["id"]))
    return ticketing.offers(ctx.cfg, row, role=p.role, actor=p.actor, now_ms=_now_ms(), worked_by=worked)


def check_fields(offer: dict[str, Any] | None, body: ActionRequest) -> None:
    """Required fields of an offered action (the ticket loop's ACTION_FIELDS), checked before the
    action is queued, so a missing one is refused with its name whatever the action. An action not
    on offer is left to the ticket loop, whose refusal says why (state, role, assignee)."""
    if offer is None:
        return
    data = body.data or {}
    for f in offer["fields"]:
        value = body.note if f["name"] == "note" else data.get(f["name"])
        if f["required"] and (value is None or (isinstance(value, str) and not value.strip())):
            raise problems.refuse(
                422, problems.FIELD_REQUIRED, f"{f['name']} is required for {body.action}", field=f["name"]
            )


@router.post(
    "/{incident_id}/actions",
    response_model=ActionResult,
    summary="Take an action on the incident's ticket (accept, start, resolve, evaluate ...)",
    responses={**R, 404: {"description": "no such incident"}, 409: {"description": "not allowed in this state"}},
)
async def post_action(
    request: Request,
    incident_id: IdStr,
    body: ActionRequest,
    p: Annotated[Principal, Depends(require("incidents.act"))],
) -> dict[str, Any]:
    ctx = ctx_of(request)
    before = await visible_incident(request, p, incident_id)
    offered = await _offers(ctx, p, before)
    check_fields(next((o for o in offered if o["action"] == body.action), None), body)
    if body.action == ticketing.NOTE_ACTION:
        assert body.note is not None  # check_fields: required
        seq = await asyncio.wrap_future(
            ticketing.add_note(ctx.gw, incident_id, body.note.strip(), actor=p.actor, role=p.role)
        )
        result: dict[str, Any] = {"seq": seq}
    else:
        result = await ticketing.apply_action(
            ctx.gw,
            incident_id,
            body.action,
            actor=p.actor,
            role=p.role,
            note=body.note,
            request_id=body.request_id,
            data=body.data,
        )
    row = await visible_incident(request, p, incident_id)
    release = access.Release()
    out = access.present_incident(p, row, ctx.cfg, release)
    out["allowed_actions"] = await _offers(ctx, p, row)
    await ctx.log_release(p, release, "detail")
    if access.is_personal(row) and p.role not in access.PERSONAL_ROLES:
        result = access.redact_data(result)
    return {"incident": out, "result": _jsonable(result)}


@router.post(
    "",
    response_model=ActionResult,
    status_code=201,
    summary="Create an incident by hand (a resident's report, a patrol finding)",
    responses=R,
)
async def create_incident(
    request: Request, body: ManualIncident, p: Annotated[Principal, Depends(require("incidents.create"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    loc = body.location.model_dump(exclude_none=True)
    cfg = ctx.cfg
    # The site's ids, as the served schema states them (gateway/api/site_schema.py): 422 like any
    # other schema violation, before the ticket loop is asked.
    if body.location.building is not None:
        b = cfg.building(body.location.building)
        if b is None:
            raise HTTPException(422, "unknown building")
        if body.location.unit is not None and b.unit(body.location.unit) is None:
            raise HTTPException(422, "the building has no such unit")
        loc.setdefault("grid", b.grid)
        c = cfg.compound_of_building(b.id)
        if c is not None:
            loc.setdefault("compound", c.id)
    if "grid" in loc and cfg.grid(loc["grid"]) is None:
        raise HTTPException(422, "unknown grid")
    if "compound" in loc and cfg.compound(loc["compound"]) is None:
        raise HTTPException(422, "unknown compound")
    if "space" in loc and cfg.parking_space(loc["space"]) is None:
        raise HTTPException(422, "unknown parking space")
    if p.scoped and not access.in_scope(p, loc.get("grid"), loc.get("compound")):
        raise HTTPException(403, "the location is outside your grids/compounds")
    result = await ticketing.create_manual(
        ctx.gw,
        category=body.category,
        type=body.type,
        severity=body.severity,
        location=loc,
        description=body.description,
        actor=p.actor,
        role=p.role,
        request_id=body.request_id,
    )
    new_id = result.get("id") or result.get("incident_id")
    if not isinstance(new_id, str):
        raise HTTPException(500, "the ticket loop returned no incident id")
    row = await visible_incident(request, p, new_id)
    out = access.present_incident(p, row, cfg, None)
    out["allowed_actions"] = await _offers(ctx, p, row)
    return {"incident": out, "result": _jsonable(result)}


def _l(v: list[Any] | None) -> list[str] | None:
    return [str(x) for x in v] if v else None


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, str | int | float | bool | type(None) | list | dict):
            out[str(k)] = v
    return out


# --- camera snapshots of an incident -----------------------------------------------------------
def _incident_snapshots(ctx: ApiContext, p: Principal, row: dict[str, Any]) -> list[Any]:
    """Snapshots taken by the incident's cameras around its trigger times (may show residents:
    elder-care incidents' images only for the personal-data roles)."""
    if row.get("category") == "eldercare" and p.role not in access.PERSONAL_ROLES:
        raise HTTPException(403, "images of elder-care incidents are for elder-care workers and installers only")
    out: list[Any] = []
    store = getattr(ctx.gw.cameras, "snapshots", None)
    if store is not None:
        devices = set(row.get("devices") or [])
        cameras = [c.id for c in ctx.cfg.cameras.cameras if c.device in devices]
        out = list(store.for_incident(cameras, int(row["first_ms"]), int(row["last_ms"])))
    photo = (row.get("detail") or {}).get("photo")  # a resident's report photo (gateway/residents)
    residents = getattr(ctx.gw, "residents", None)
    if isinstance(photo, str) and residents is not None:
        out += [s for s in residents.photos.find("report") if s.id == photo]
    return out


def _snapshot_store(ctx: ApiContext) -> Any:
    """Camera snapshots and report photos share one folder and quota (the residents' service hands
    out the live camera store when cameras run)."""
    residents = getattr(ctx.gw, "residents", None)
    return residents.photos if residents is not None else getattr(ctx.gw.cameras, "snapshots", None)


@router.get("/{incident_id}/snapshots", summary="Camera snapshots of the incident", responses=R)
async def list_snapshots(
    request: Request, incident_id: IdStr, p: Annotated[Principal, Depends(require("incidents.read"))]
) -> dict[str, Any]:
    row = await visible_incident(request, p, incident_id)
    snaps = _incident_snapshots(ctx_of(request), p, row)
    items = [{"id": s.id, "camera": s.camera, "zone": s.zone, "ts_ms": s.ts_ms, "size": s.size} for s in snaps]
    return {"items": items}


@router.get(
    "/{incident_id}/snapshots/{snapshot_id}",
    summary="One snapshot (image/jpeg)",
    responses={**R, 200: {"content": {"image/jpeg": {}}}},
    response_class=Response,
)
async def get_snapshot(
    request: Request,
    incident_id: IdStr,
    snapshot_id: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}-\d{13}-[a-z0-9][a-z0-9_-]{0,63}-\d+$")],
    p: Annotated[Principal, Depends(require("incidents.read"))],
) -> Response:
    ctx = ctx_of(request)
    row = await visible_incident(request, p, incident_id)
    store = _snapshot_store(ctx)
    if store is None or snapshot_id not in {s.id for s in _incident_snapshots(ctx, p, row)}:
        raise HTTPException(404, "no such snapshot for this incident")
    data = await ctx.readers.run(lambda _conn: store.get(snapshot_id))
    if data is None:
        raise HTTPException(404, "the snapshot was removed (quota or retention)")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})
