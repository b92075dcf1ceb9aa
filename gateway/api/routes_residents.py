"""The residents' API: evaluation and report pages (no account: the signed link is the credential),
and the staff side of it (evaluation QR on a visit, building report QR, early warnings).

The link token travels in the request body, never in a URL: the pages read it from the address's
fragment, which browsers do not send. Bodies are read with a hard size cap before parsing (a
photo is the only large field). Every resident request is rate-limited per client address.
Refusals are ``GatewayError``s (``LinkRefused``, ``ResidentRefused``, ``PhotoRefused``,
``TicketError``) answered by the app's one handler with their status and ``code``; the page shows
the code's sentence from its catalog.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sqlite3
import time
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateway.api import access
from gateway.api.auth import Principal, RoleRateLimiter
from gateway.api.deps import AUTH_ERRORS, ctx_of, require
from gateway.api.routes_incidents import IdStr, visible_incident
from gateway.core import links
from gateway.residents import evaluation, qr, reports, sender, warnings
from gateway.residents.evaluation import ResidentRefused

if TYPE_CHECKING:
    from concurrent.futures import Future

    from gateway.residents.service import ResidentService

router = APIRouter(tags=["residents"])

Token = Annotated[str, Field(min_length=10, max_length=200, pattern=r"^[A-Za-z0-9_.-]+$")]
EVAL_BODY_MAX = 8 * 1024
REPORT_BODY_SLACK = 16 * 1024
WRITE_TIMEOUT_S = 15.0
REFUSALS: dict[int | str, dict[str, Any]] = {
    403: {"description": "link refused (code: link_used, link_expired, link_invalid ...)"},
    409: {"description": "already evaluated or closed (code evaluation_closed)"},
    422: {"description": "invalid input"},
    429: {"description": "too many requests (Retry-After), or report limits (code report_limit)"},
}


class EvalView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token
    lang: Literal["zh", "en"] = "zh"


class EvalSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token
    solved: bool
    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=500)


class ReportView(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token


class ReportSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Token
    type: str = Field(min_length=1, max_length=40, pattern=r"^[a-z][a-z0-9_]{0,39}$")
    unit: str | None = Field(default=None, max_length=64, description="The reporter's unit; null: a common area.")
    area: str | None = Field(default=None, max_length=100, description="Which common area (corridor, lift ...).")
    description: str = Field(min_length=1, max_length=1000)
    phone: str | None = Field(default=None, max_length=24, pattern=r"^\+?[0-9][0-9 -]{4,19}$")
    photo: str | None = Field(default=None, description="Base64 JPEG or PNG; re-encoded, metadata stripped.")


def _service(request: Request) -> ResidentService:
    svc: ResidentService | None = getattr(ctx_of(request).gw, "residents", None)
    if svc is None or not svc.enabled:
        raise ResidentRefused("not_available", "the residents' pages are not enabled on this gateway")
    return svc


def _limit(request: Request) -> None:
    state = request.app.state
    lim: RoleRateLimiter | None = getattr(state, "resident_limiter", None)
    if lim is None or len(lim._buckets) > 50_000:  # a new limiter now and then: the map cannot grow forever
        per_minute = ctx_of(request).cfg.resident_loop.requests_per_minute
        lim = state.resident_limiter = RoleRateLimiter({"resident": per_minute})
    client = request.client.host if request.client else "unknown"
    wait = lim.retry_after(client, "resident")
    if wait:
        raise HTTPException(429, f"too many requests; retry in {wait} s", {"Retry-After": str(wait)})


async def _body(request: Request, model: type[BaseModel], limit: int) -> Any:
    """Read at most ``limit`` bytes (413 beyond), then validate (422 with pydantic's errors)."""
    _limit(request)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"request body larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"request body larger than {limit} bytes")
        chunks.append(chunk)
    try:
        return model.model_validate_json(b"".join(chunks))
    except ValidationError as exc:
        raise HTTPException(422, exc.errors(include_url=False, include_input=False)) from None


def _schema(model: type[BaseModel]) -> dict[str, Any]:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


async def _wait(fut: Future[Any]) -> Any:
    try:
        return await asyncio.wait_for(asyncio.wrap_future(fut), WRITE_TIMEOUT_S)
    except TimeoutError:
        raise ResidentRefused("busy", "the gateway is busy; please try again") from None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@router.post(
    "/api/v1/resident/evaluation/view",
    summary="What an evaluation link shows: its incident, what was done and by which team",
    responses=REFUSALS,
    openapi_extra=_schema(EvalView),
)
async def evaluation_view(request: Request) -> dict[str, Any]:
    body: EvalView = await _body(request, EvalView, EVAL_BODY_MAX)
    ctx = ctx_of(request)
    _service(request)
    result: dict[str, Any] = await ctx.readers.run(
        lambda conn: evaluation.view(conn, ctx.cfg, body.token, body.lang, _now_ms())
    )
    return result


@router.post(
    "/api/v1/resident/evaluation",
    summary="The resident's evaluation: solved or not, 1-5, a comment (the link is used up)",
    responses=REFUSALS,
    openapi_extra=_schema(EvalSubmit),
)
async def evaluation_submit(request: Request) -> dict[str, Any]:
    body: EvalSubmit = await _body(request, EvalSubmit, EVAL_BODY_MAX)
    svc = _service(request)
    fut = svc.submit_evaluation(body.token, solved=body.solved, rating=body.rating, comment=body.comment)
    result: dict[str, Any] = await _wait(fut)
    return result


@router.post(
    "/api/v1/resident/report/view",
    summary="What a building's report QR code offers: its units and the report types",
    responses=REFUSALS,
    openapi_extra=_schema(ReportView),
)
async def report_view(request: Request) -> dict[str, Any]:
    body: ReportView = await _body(request, ReportView, EVAL_BODY_MAX)
    ctx = ctx_of(request)
    _service(request)
    result: dict[str, Any] = await ctx.readers.run(lambda conn: reports.view(conn, ctx.cfg, body.token, _now_ms()))
    return result


@router.post(
    "/api/v1/resident/report",
    status_code=201,
    summary="A resident's report: stored (with its photo) and dispatched before the answer",
    responses={**REFUSALS, 413: {"description": "body or photo too large"}},
    openapi_extra=_schema(ReportSubmit),
)
async def report_submit(request: Request) -> dict[str, Any]:
    svc = _service(request)
    rl = svc.gw.cfg.resident_loop.report
    limit = (rl.photo_max_bytes * 4) // 3 + REPORT_BODY_SLACK
    body: ReportSubmit = await _body(request, ReportSubmit, limit)
    ctx = ctx_of(request)
    link = await ctx.readers.run(lambda conn: links.verify(conn, body.token, "report", now_ms=_now_ms()))
    photo_id = None
    if body.photo:
        try:
            raw = base64.b64decode(body.photo, validate=True)
        except (binascii.Error, ValueError):
            raise ResidentRefused("invalid", "photo must be base64") from None
        building = str(link.subject.get("building"))
        # decoding, re-encoding and the fsync'd file write: off the event loop
        photo_id = await asyncio.to_thread(svc.store_photo, building, raw)
    fields = body.model_dump(exclude={"token", "photo"})
    result: dict[str, Any] = await _wait(svc.submit_report(body.token, fields, photo_id))
    return {"received": True, "reference": result["reference"], "has_phone": result["has_phone"]}


# --- staff ------------------------------------------------------------------------------------------
@router.post(
    "/api/v1/incidents/{incident_id}/evaluation-link",
    summary="A fresh evaluation link as a QR code, printed on a visit (never by who worked the incident)",
    responses={**AUTH_ERRORS, 409: {"description": "no evaluation is waiting"}},
)
async def evaluation_link(
    request: Request, incident_id: IdStr, p: Annotated[Principal, Depends(require("resident.print"))]
) -> dict[str, Any]:
    svc = _service(request)
    await visible_incident(request, p, incident_id)
    token: str = await _wait(svc.print_evaluation_link(incident_id, p.actor))
    base = svc.gw.cfg.resident_loop.base_url or str(request.base_url).rstrip("/")
    url = sender.evaluation_url(base, token)
    return {"url": url, "svg": await asyncio.to_thread(qr.svg, url)}


@router.post(
    "/api/v1/buildings/{building}/report-qr",
    summary="A building's report QR code (installers; print it in the stairwell)",
    responses=AUTH_ERRORS,
)
async def report_qr(
    request: Request,
    building: Annotated[str, Path(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")],
    p: Annotated[Principal, Depends(require("resident.qr"))],
) -> dict[str, Any]:
    svc = _service(request)
    if svc.gw.cfg.building(building) is None:
        raise HTTPException(404, "no such building")
    token: str = await _wait(svc.issue_report_qr(building))
    base = svc.gw.cfg.resident_loop.base_url or str(request.base_url).rstrip("/")
    url = reports.report_url(base, token)
    return {"building": building, "url": url, "svg": await asyncio.to_thread(qr.svg, url)}


def _visible_warnings(p: Principal, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [w for w in items if w.get("compound") is None or access.in_scope(p, None, w["compound"])]


@router.get("/api/v1/warnings", summary="Early warnings raised now (提前预警) and their figures", responses=AUTH_ERRORS)
async def current_warnings(
    request: Request, p: Annotated[Principal, Depends(require("scorecard.read"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    items = await ctx.readers.run(lambda conn: list(warnings.raised(conn).values()))
    return {"items": _visible_warnings(p, items)}


@router.get(
    "/api/v1/feed/warnings",
    summary="Every early warning raised or cleared, in order, resumable by cursor",
    responses=AUTH_ERRORS,
)
async def warnings_feed(
    request: Request,
    p: Annotated[Principal, Depends(require("feed.read"))],
    after: Annotated[int, Query(ge=0, le=2**53)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    ctx = ctx_of(request)

    def read(conn: sqlite3.Connection) -> dict[str, Any]:
        return warnings.feed(conn, after, limit)

    page = await ctx.readers.run(read)
    page["items"] = _visible_warnings(p, page["items"])
    return page


__all__ = ["router"]
