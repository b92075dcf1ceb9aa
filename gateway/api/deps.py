"""Shared request plumbing: the API context, the bearer-token dependency, the access log."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from gateway.api import access, db, problems, sessions
from gateway.api.auth import AuthFailureLimiter, Principal, RoleRateLimiter, TokenVerifier, mark_used
from gateway.api.db import Readers
from gateway.ingest.pipeline import TELEMETRY_BATCH

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.app import Gateway
    from gateway.core.contract import BatchResult

# Ingest is "behind" while more than this many messages wait uncommitted (a few commit batches):
# then the API caps its requests (Governor) and the stream gathers non-urgent changes for longer.
BACKLOG_HIGH = 4 * TELEMETRY_BATCH


def ingest_behind(gw: Gateway) -> bool:
    return int(getattr(gw.pipeline, "backlog", 0)) > BACKLOG_HIGH


log = logging.getLogger("gateway.api.access_log")

_T = TypeVar("_T")

bearer = HTTPBearer(auto_error=False, description="Token from `edge-gateway token create` (see docs/api.md)")
CHALLENGE = {"WWW-Authenticate": 'Bearer realm="edge-gateway"'}
ACCESS_LOG_DEDUPE_S = 300.0


@dataclass
class ApiContext:
    gw: Gateway
    readers: Readers
    verifier: TokenVerifier
    limiter: AuthFailureLimiter
    hub: Any = None
    role_limiter: RoleRateLimiter | None = None
    session_verifier: sessions.SessionVerifier = field(default_factory=sessions.SessionVerifier)
    # failed sign-in link attempts from every address together (a guess spread over many addresses)
    signin_limiter: AuthFailureLimiter = field(default_factory=lambda: AuthFailureLimiter(50, 60))
    _logged: dict[tuple[str, str, str], float] = field(default_factory=dict)
    _writing: dict[tuple[str, str, str], asyncio.Future[None]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def cfg(self) -> SiteConfig:
        return self.gw.cfg

    async def write(self, fn: Callable[[sqlite3.Connection, BatchResult, int], _T], timeout: float = 10.0) -> _T:
        """Run a write on the pipeline thread and wait for it without blocking the loop."""
        fut = self.gw.pipeline.call(fn, db.request_cost.get())
        return await asyncio.wait_for(asyncio.wrap_future(fut), timeout)

    async def log_release(self, p: Principal, release: access.Release, via: str) -> None:
        """Write personal-data / location releases to access_log before the data leaves."""
        await self.log_releases([(p, release)], via)

    async def log_releases(self, items: list[tuple[Principal, access.Release]], via: str) -> None:
        """Write the releases of one response, or of one stream dispatch to many clients, to
        access_log in one transaction before the data leaves; raises HTTPException 503 if it fails.

        The same (token, incident, reason) is logged at most once per ACCESS_LOG_DEDUPE_S (a console
        refreshing its list would otherwise write on every refresh: SD-card wear). A key counts as
        logged only once its row is committed: a second request for a key whose row is still being
        written waits for that write (and fails with it) instead of releasing the data early.
        """
        if not any(release.rows for _, release in items):
            return
        now = time.monotonic()
        rows = []
        keys: list[tuple[str, str, str]] = []
        seen: set[tuple[str, str, str]] = set()
        waits: list[asyncio.Future[None]] = []
        mine: asyncio.Future[None] | None = None
        with self._lock:
            if len(self._logged) > 20_000:
                self._logged = {k: v for k, v in self._logged.items() if v > now}
            for p, release in items:
                for incident_id, resident_id, reason, fields in release.rows:
                    key = (p.token_id, incident_id, reason)
                    pending = self._writing.get(key)
                    if pending is not None:
                        waits.append(pending)
                        continue
                    if self._logged.get(key, 0.0) > now or key in seen:
                        continue
                    seen.add(key)
                    keys.append(key)
                    rows.append((p.token_id, p.role, reason, incident_id, resident_id, json.dumps(fields), via))
            if rows:
                mine = asyncio.get_running_loop().create_future()
                for key in keys:
                    self._writing[key] = mine
        if rows:
            assert mine is not None
            await self._write_log(rows, keys, mine)
        for w in waits:
            try:
                await asyncio.shield(w)
            except Exception:
                raise HTTPException(503, "the access log could not be written; personal data is withheld") from None

    async def _write_log(
        self, rows: list[tuple[Any, ...]], keys: list[tuple[str, str, str]], done: asyncio.Future[None]
    ) -> None:
        def write(conn: sqlite3.Connection, result: BatchResult, now_ms: int) -> None:
            conn.executemany(
                "INSERT INTO access_log(ts_ms, token_id, role, reason, incident_id, resident_id, fields, via)"
                " VALUES (?,?,?,?,?,?,?,?)",
                [(now_ms, *r) for r in rows],
            )

        ok = False
        try:
            await self.write(write)
            ok = True
        except Exception as exc:
            log.error("access log write failed; the personal data of this release is withheld: %s", exc)
        finally:  # also when this request is cancelled mid-write: never leave a key "being written"
            with self._lock:
                until = time.monotonic() + ACCESS_LOG_DEDUPE_S
                for key in keys:
                    self._writing.pop(key, None)
                    if ok:
                        self._logged[key] = until
            if ok:
                done.set_result(None)
            else:  # not logged: waiters withhold the data too, and the next request tries again
                done.set_exception(RuntimeError("access log not written"))
                done.exception()  # retrieved here, so an unawaited failure is not reported as lost
        if not ok:
            raise HTTPException(503, "the access log could not be written; personal data is withheld")


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


def client_key(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def authenticate(request: Request, creds: HTTPAuthorizationCredentials | None) -> Principal:
    """A bearer token (API clients), else the device session cookie (the console)."""
    ctx = ctx_of(request)
    client = client_key(request)
    wait = ctx.limiter.retry_after(client)
    if wait:
        raise HTTPException(
            429, f"too many failed authentications from this address; retry in {wait} s", {"Retry-After": str(wait)}
        )
    if creds is None or not creds.credentials:
        cookie = request.cookies.get(sessions.COOKIE)
        if cookie:
            return await session_principal(request, cookie)
        raise HTTPException(401, "authentication required: send 'Authorization: Bearer <token>'", CHALLENGE)
    token = creds.credentials.strip()
    p = ctx.verifier.cached(token)
    if p is None:
        p, reason = await ctx.readers.run(ctx.verifier.verify, token)
        if p is None:
            ctx.limiter.failed(client)
            raise HTTPException(401, f"invalid token ({reason})", CHALLENGE)
    due = ctx.verifier.due_last_used(p.token_id)
    if due is not None:
        mark_used(ctx.gw, p.token_id, due)
    return p


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def check_same_origin(request: Request) -> None:
    """CSRF defence for cookie-authenticated writes, on top of SameSite=Strict: the console's own
    header (another site's page cannot send it without a CORS pre-flight, which is refused) and, when
    the browser names one, an Origin equal to the gateway's own."""
    if request.method not in UNSAFE_METHODS:
        return
    if request.headers.get(sessions.CONSOLE_HEADER) != "1":
        raise problems.refuse(
            403, problems.CSRF_REFUSED, f"writes with a session cookie need {sessions.CONSOLE_HEADER}"
        )
    origin = request.headers.get("origin")
    if origin is not None and origin != own_origin(request):
        raise problems.refuse(403, problems.CSRF_REFUSED, "request from another origin")


def own_origin(request: Request) -> str:
    host = request.headers.get("host") or f"{request.url.hostname}:{request.url.port}"
    return f"{request.url.scheme}://{host}"


async def session_principal(request: Request, cookie: str) -> Principal:
    ctx = ctx_of(request)
    row = ctx.session_verifier.cached(cookie)
    if row is None:
        row = await ctx.readers.run(ctx.session_verifier.verify, cookie)
        if row is None:
            ctx.limiter.failed(client_key(request))
            raise problems.refuse(401, problems.SESSION_UNKNOWN, "this device's session is unknown, expired or revoked")
    check_same_origin(request)
    due = ctx.session_verifier.due_last_used(row.id)
    if due is not None:
        sid = row.id
        ctx.gw.pipeline.call(lambda conn, result, now: sessions.mark_used(conn, sid, due))
    return row.principal()


def require(perm: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: a valid bearer token whose role has permission ``perm`` (else 401/403/429)."""
    roles = access.PERMISSIONS[perm]

    async def dep(
        request: Request, creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
    ) -> Principal:
        p = await authenticate(request, creds)
        if p.role not in roles:
            raise HTTPException(403, f"role '{p.role}' may not use this endpoint (allowed: {', '.join(sorted(roles))})")
        limiter = ctx_of(request).role_limiter
        wait = limiter.retry_after(p.token_id, p.role) if limiter is not None else 0
        if wait:
            raise HTTPException(
                429, f"too many requests for role '{p.role}'; retry in {wait} s", {"Retry-After": str(wait)}
            )
        request.state.principal = p
        return p

    return dep


# The errors every ``require``-guarded endpoint can answer with, for its OpenAPI ``responses``.
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "no or bad token"},
    403: {"description": "role or scope refused"},
}
