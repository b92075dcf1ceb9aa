"""Residents' personal data (installers only): the log of every release, and forgetting a resident."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require

router = APIRouter(tags=["privacy"])


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
    summary="Every release of residents' personal details or home location (installers only)",
    responses=AUTH_ERRORS,
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
    summary="Remove or anonymise one resident's personal data everywhere it lives (installers only)",
    responses=AUTH_ERRORS,
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
