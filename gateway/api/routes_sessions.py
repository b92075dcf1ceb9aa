"""Device sessions and one-time sign-in links (gateway/api/sessions.py).

- ``POST /api/v1/session``: sign this device in, with a sign-in link (``{"link": ...}``) or with a
  bearer token; sets the session cookie. Brute force: failed link attempts count against the
  address (as failed tokens do) and against all addresses together (``signin_failures``).
- ``POST /api/v1/session/signout``: end this device's session and clear the cookie.
- ``GET /api/v1/sessions``, ``POST /api/v1/sessions/revoke``: a person's own devices; an installer's
  for everyone (per device or per person).
- ``POST /api/v1/signin-links``: an installer issues a person a one-time link (and its QR code).
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import BaseModel, ConfigDict, Field

from gateway.api import access, problems, sessions
from gateway.api.auth import ROLES, Principal
from gateway.api.deps import AUTH_ERRORS, authenticate, bearer, check_same_origin, client_key, ctx_of, require
from gateway.core import links
from gateway.core import store as st

if TYPE_CHECKING:
    from gateway.core.contract import BatchResult

router = APIRouter(tags=["sessions"])
IdPattern = r"^[A-Za-z0-9_.:-]{1,64}$"


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    link: str | None = Field(
        default=None, max_length=200, description="The sign-in link's token (what follows '#signin=')."
    )


class Revoke(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(default=None, pattern=IdPattern, description="One device's session id.")
    person: str | None = Field(default=None, pattern=IdPattern, description="Every session of this person.")


class LinkRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    person: str = Field(pattern=IdPattern, description="Staff id from the site file.")
    role: str | None = Field(default=None, description="API role; default: the person's configured role.")
    grids: list[str] | None = Field(default=None, max_length=50, description="Scope; default: the person's grids.")
    compounds: list[str] | None = Field(default=None, max_length=50, description="Scope; default: the person's.")


def _cookie(request: Request, response: Response, secret: str, max_age_s: int) -> None:
    """HttpOnly (no script reads it), SameSite=Strict (no other site sends it), Secure over TLS."""
    base = ctx_of(request).cfg.api.console_base_url or ""
    secure = request.url.scheme == "https" or base.startswith("https://")
    response.set_cookie(
        sessions.COOKIE, secret, max_age=max_age_s, path="/", httponly=True, samesite="strict", secure=secure
    )


def _me(p: Principal, row: sessions.SessionRow) -> dict[str, Any]:
    return {"session": row.public(), "role": p.role, "name": p.name, "personal_data": p.role in access.PERSONAL_ROLES}


@router.post(
    "/api/v1/session",
    summary="Sign this device in (one-time link or bearer token); sets the session cookie",
    responses={**AUTH_ERRORS, 429: {"description": "too many failed attempts"}},
)
async def sign_in(
    request: Request,
    response: Response,
    body: SignIn,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> dict[str, Any]:
    ctx = ctx_of(request)
    if request.headers.get(sessions.CONSOLE_HEADER) != "1":  # a cross-site form cannot add it
        raise problems.refuse(403, problems.CSRF_REFUSED, f"sign-in needs the {sessions.CONSOLE_HEADER} header")
    device = sessions.device_of(request.headers.get("user-agent", ""))
    ttl_ms = int(ctx.cfg.api.session_days * sessions.DAY_MS)
    if body.link is not None:
        row, secret = await _redeem(request, body.link, device, ttl_ms)
    else:
        if creds is None:
            raise problems.refuse(401, "unauthorized", "send a sign-in link or a bearer token")
        p = await authenticate(request, creds)
        if p.token_id.startswith(sessions.SESSION_PREFIX):
            raise problems.refuse(400, "bad_request", "already a session")

        def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> tuple[sessions.SessionRow, str]:
            return sessions.create(
                conn, person=p.name, role=p.role, grids=p.grids, compounds=p.compounds, device=device, via="token",
                ttl_ms=ttl_ms, now_ms=now,
            )  # fmt: skip

        row, secret = await ctx.write(write)
    _cookie(request, response, secret, ttl_ms // 1000)
    return _me(row.principal(), row)


async def _redeem(request: Request, token: str, device: str, ttl_ms: int) -> tuple[sessions.SessionRow, str]:
    """Check the link in a reader first (a forged or spent link never reaches the writer), then
    consume it and create the session in one transaction."""
    ctx = ctx_of(request)
    client = client_key(request)
    for limiter, key, code in ((ctx.limiter, client, "rate_limited"), (ctx.signin_limiter, "*", "signin_limited")):
        wait = limiter.retry_after(key)
        if wait:
            raise problems.refuse(
                429, code, f"too many failed sign-in attempts; retry in {wait} s", {"Retry-After": str(wait)}
            )

    def failed(exc: links.LinkRefused) -> HTTPException:
        ctx.limiter.failed(client)
        ctx.signin_limiter.failed("*")
        return problems.refuse(401, exc.code, str(exc))

    try:
        await ctx.readers.run(lambda conn: links.verify(conn, token, "signin"))
    except links.LinkRefused as exc:
        raise failed(exc) from None

    def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> tuple[sessions.SessionRow, str]:
        return sessions.redeem(conn, token, device=device, ttl_ms=ttl_ms, now_ms=now)

    try:
        return await ctx.write(write)
    except links.LinkRefused as exc:  # used by another device a moment ago
        raise failed(exc) from None


@router.post("/api/v1/session/signout", summary="Sign this device out (revokes its session)", responses=AUTH_ERRORS)
async def sign_out(request: Request, response: Response) -> dict[str, Any]:
    ctx = ctx_of(request)
    # Only the console may sign a device out: a cross-site form would otherwise clear the cookie
    # (a browser accepts the deletion on a top-level navigation) and leave a worker signed out.
    check_same_origin(request)
    cookie = request.cookies.get(sessions.COOKIE)
    revoked = 0
    if cookie:
        row = await ctx.readers.run(sessions.lookup, cookie)
        if row is not None:
            sid = row.id
            revoked = await ctx.write(lambda conn, result, now: sessions.revoke(conn, now_ms=now, session_id=sid))
        ctx.session_verifier.forget(cookie)
    response.delete_cookie(sessions.COOKIE, path="/", httponly=True, samesite="strict")
    return {"revoked": revoked}


@router.get("/api/v1/sessions", summary="Signed-in devices (yours; an installer's: everyone's)", responses=AUTH_ERRORS)
async def list_sessions(
    request: Request,
    p: Annotated[Principal, Depends(require("sessions.own"))],
    person: Annotated[str | None, Query(pattern=IdPattern)] = None,
) -> dict[str, Any]:
    ctx = ctx_of(request)
    if not access.allowed(p, "sessions.manage"):
        person = p.name
    rows = await ctx.readers.run(lambda conn: sessions.list_sessions(conn, person=person, active_at=st.now_ms()))
    current = p.token_id.removeprefix(sessions.SESSION_PREFIX)
    return {"items": [{**r.public(), "current": r.id == current} for r in rows]}


@router.post(
    "/api/v1/sessions/revoke", summary="Sign out one device or every device of a person", responses=AUTH_ERRORS
)
async def revoke_sessions(
    request: Request, body: Revoke, p: Annotated[Principal, Depends(require("sessions.own"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    if (body.id is None) == (body.person is None):
        raise problems.refuse(422, problems.FIELD_REQUIRED, "give id or person", field="id")
    if not access.allowed(p, "sessions.manage"):
        own = await ctx.readers.run(lambda conn: {r.id for r in sessions.list_sessions(conn, person=p.name)})
        if (body.person is not None and body.person != p.name) or (body.id is not None and body.id not in own):
            raise HTTPException(403, "you may sign out your own devices only")
    sid, person = body.id, body.person
    n = await ctx.write(lambda conn, result, now: sessions.revoke(conn, now_ms=now, session_id=sid, person=person))
    return {"revoked": n}


@router.post(
    "/api/v1/signin-links", summary="Issue a person a one-time sign-in link and QR code", responses=AUTH_ERRORS
)
async def issue_link(
    request: Request, body: LinkRequest, p: Annotated[Principal, Depends(require("sessions.manage"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    member = cfg.staff_member(body.person)
    if member is None:
        raise problems.refuse(422, "invalid_input", "unknown person (staff id)", field="person")
    role = body.role or member.role
    if role not in ROLES:
        raise problems.refuse(422, "invalid_input", f"role must be one of {', '.join(ROLES)}", field="role")
    grids = member.grids if body.grids is None else body.grids
    compounds = member.compounds if body.compounds is None else body.compounds
    if any(cfg.grid(g) is None for g in grids) or any(cfg.compound(c) is None for c in compounds):
        raise problems.refuse(422, "invalid_input", "unknown grid or compound", field="grids")
    ttl_s = cfg.api.signin_link_minutes * 60
    issuer = p.name

    def write(conn: sqlite3.Connection, result: BatchResult, now: int) -> str:
        return sessions.issue_signin_link(
            conn, person=member.id, role=role, grids=grids, compounds=compounds, ttl_s=ttl_s, issued_by=issuer,
            now_ms=now,
        )  # fmt: skip

    token = await ctx.write(write)
    url = sessions.signin_url(cfg, token)
    return {
        "person": member.id,
        "name": member.name,
        "role": role,
        "url": url,
        "expires_s": ttl_s,
        "qr": sessions.qr_data_uri(url),
    }
