"""/healthz (liveness, no token), /readyz (readiness) and /metrics (Prometheus)."""

from __future__ import annotations

import sqlite3
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from gateway import __version__
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.fastjson import FastJSONResponse
from gateway.core import store as st
from gateway.ingest.broker_drops import drop_status

router = APIRouter(tags=["health"])


# No token on purpose: supervisors and load balancers probe liveness without credentials.
@router.get("/healthz", summary="Liveness: the process answers (no token)")
async def healthz(request: Request) -> dict[str, str]:
    # The version too: the console's footer shows it, and an installer checks an upgrade took.
    return {"status": "ok", "gateway": ctx_of(request).cfg.gateway.id, "version": __version__}


def _ready_checks(conn: sqlite3.Connection, gw: Any) -> dict[str, Any]:
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
    # Messages the broker dropped are gone: restarting or failing over would not bring them back,
    # and ingest works. So not "unready" but degraded, until a person closes the incident.
    drops = drop_status(conn)
    checks["broker_drops"] = {"ok": True, "degraded": drops["open_incident"] is not None, **drops}
    ready = all(v["ok"] for v in checks.values() if isinstance(v, dict) and "ok" in v)
    degraded = any(v.get("degraded") for v in checks.values() if isinstance(v, dict))
    checks["ready"] = ready
    checks["status"] = "not_ready" if not ready else "degraded" if degraded else "ready"
    checks["checked_ms"] = st.now_ms()
    return checks


@router.get(
    "/readyz",
    summary="Readiness: broker connected, store writable, sync backlog within bounds (503 if not); "
    "status 'degraded' while the broker's dropped messages are not dealt with",
    responses={**AUTH_ERRORS, 503: {"description": "not ready; the body says why"}},
)
async def readyz(request: Request, p: Annotated[Principal, Depends(require("health.read"))]) -> Response:
    ctx = ctx_of(request)
    checks = await ctx.readers.run(_ready_checks, ctx.gw)
    return FastJSONResponse(checks, status_code=200 if checks["ready"] else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    responses={**AUTH_ERRORS, 200: {"content": {"text/plain": {}}}},
    response_class=Response,
)
async def metrics(request: Request, p: Annotated[Principal, Depends(require("health.read"))]) -> Response:
    ctx = ctx_of(request)
    throttled = request.app.state.governor.throttled
    from gateway.api.metrics import render_metrics  # prometheus_client: ~10 ms of CPU, at the first scrape

    body = await ctx.readers.run(render_metrics, ctx.gw, len(ctx.hub.clients), throttled)
    return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")
