"""/api/v1/feed/incidents: every incident change in commit order, for the central platform."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from gateway.api import access, db
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.models import FeedPage

router = APIRouter(tags=["feed"])
FEED_MAX = 1000

if TYPE_CHECKING:
    from edge_config import SiteConfig


def _feed(conn: sqlite3.Connection, p: Principal, cfg: SiteConfig, after: int, limit: int) -> dict[str, Any]:
    events = db.events_after(conn, after, limit)
    incs = db.get_incidents(conn, [e.incident_id for e in events])
    items = []
    for e in events:
        row = incs.get(e.incident_id)
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
    nxt = events[-1].seq if events else after
    return {"items": items, "next_cursor": nxt, "has_more": len(events) == limit}


@router.get(
    "/api/v1/feed/incidents",
    response_model=FeedPage,
    summary="Every incident change in commit order (creation and each transition), resumable by cursor",
    responses=AUTH_ERRORS,
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
