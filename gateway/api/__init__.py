"""HTTP API and console served by the gateway process (FastAPI on the asyncio loop).

Only /healthz is open; everything else needs a bearer token with a role (gateway/api/auth.py,
gateway/api/access.py, docs/api.md). Reads use read-only SQLite connections in a bounded thread
pool; writes go to the pipeline thread. The console (gateway/console) is static files under a
strict Content-Security-Policy (no inline scripts).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.api import auth, db, problems
from gateway.api.db import Readers
from gateway.api.deps import ApiContext, ingest_behind
from gateway.errors import GatewayError

if TYPE_CHECKING:
    from gateway.app import Gateway

log = logging.getLogger("gateway.api")
CONSOLE_DIR = Path(__file__).resolve().parent.parent / "console"
RESIDENT_DIR = Path(__file__).resolve().parent.parent / "residents" / "static"

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "media-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
]


class SecurityHeaders:
    """Pure ASGI (streams pass through untouched): CSP and friends on every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                have = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in SECURITY_HEADERS if k not in have]
                if scope["path"].startswith("/api/"):
                    headers.append((b"cache-control", b"no-store")) if b"cache-control" not in have else None
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class GovernorStats:
    passed: int = 0  # requests served at once (ingest keeping up)
    throttled: int = 0  # requests served one at a time under the CPU cap (ingest behind)
    paused_s: float = 0.0


class Governor:
    """Keeps API requests from slowing ingest, which runs in the same process (and under the same GIL).

    While ingest keeps up (``behind()`` false: deps.ingest_behind, as the stream uses) requests pass
    straight through: nothing is queued or delayed. While ingest is behind, requests (not the
    stream, not /healthz or the console's static files) run one at a time and after each the next
    waits ``cost * (1 / share - 1)``, where ``cost`` is what the request took from the rest: the
    event loop thread's CPU time (``time.thread_time``, which also counts stream work done
    meanwhile), the reader threads' CPU working for it, and the pipeline thread's whole time on its
    writes (``db.request_cost``; an access-log row is a transaction with an fsync on the thread
    ingest runs on). So with share 0.03 the API takes at most ~3 % of a CPU from a backlogged
    ingest however many clients hammer it. CPU, not the request's wall time: that grows with the
    very GIL contention that ingest causes, and would throttle the API hardest exactly when its own
    share is smallest. A single request is never slowed.
    """

    EXEMPT = ("/api/v1/stream", "/healthz", "/console", "/r/")
    MAX_PAUSE_S = 2.0

    def __init__(
        self,
        app: ASGIApp,
        share: float,
        behind: Callable[[], bool],
        stats: GovernorStats | None = None,
    ) -> None:
        self.app = app
        self.share = share
        self.behind = behind
        self._sem: asyncio.Semaphore | None = None
        self.stats = stats if stats is not None else GovernorStats()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.share >= 1 or scope["path"].startswith(self.EXEMPT):
            await self.app(scope, receive, send)
            return
        if not self.behind():
            self.stats.passed += 1
            await self.app(scope, receive, send)
            return
        if self._sem is None:
            self._sem = asyncio.Semaphore(1)
        async with self._sem:
            self.stats.throttled += 1
            meter: list[float] = []
            token = db.request_cost.set(meter)
            t0 = time.thread_time()
            try:
                await self.app(scope, receive, send)
            finally:
                cost = time.thread_time() - t0 + sum(meter)
                db.request_cost.reset(token)
                if self.behind():
                    pause = min(cost * (1 / self.share - 1), self.MAX_PAUSE_S)
                    self.stats.paused_s += pause
                    await asyncio.sleep(pause)


# The API's routers (modules of gateway.api), one per resource, each with its OpenAPI tag; this order
# is the document's order and the order routes are matched in.
ROUTERS = (
    "routes_device_pages",  # before routes_devices: /devices/page is no device id
    "routes_devices",
    "routes_site",
    "routes_me",
    "routes_sessions",
    "routes_feed",
    "routes_privacy",
    "routes_health",
    "routes_incidents",
    "routes_residents",
    "routes_departments",
    "routes_history",
    "routes_reports",
    "routes_parking",
    "routes_buildings",
    "routes_adopt",
    "routes_stats",
    "stream",
)
# Built with the app: what supervisors probe from the first second (/healthz, /readyz, /metrics),
# and the live stream, whose hub listens to commits from the start.
EAGER_ROUTERS = ("routes_health", "stream")


class Routers:
    """The app's routers: the eager ones with the app, the others on first need (:meth:`load`: the
    first request for any other path, or the OpenAPI document). FastAPI analyses every endpoint
    (signature, dependencies, models) when its route is declared: ~0.1 s of CPU for these routers,
    0.4 s on a Pi-class core, that the gateway's start-up need not wait for (README "Pi budget")."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.head = list(app.router.routes)  # FastAPI's own, first as before (the OpenAPI document)
        self.routes: dict[str, list[BaseRoute]] = {}
        self.eager_paths: set[str] = set()
        self.loaded = False

    def include(self, names: tuple[str, ...]) -> None:
        app = self.app
        own = {id(r) for r in self.head} | {id(r) for routes in self.routes.values() for r in routes}
        tail = [r for r in app.router.routes if id(r) not in own]  # added since: the root, the static mounts
        for name in names:
            if name not in self.routes:
                router = importlib.import_module(f"gateway.api.{name}").router
                n = len(app.router.routes)
                app.include_router(router)
                self.routes[name] = app.router.routes[n:]
        ordered = [r for name in ROUTERS for r in self.routes.get(name, [])]
        app.router.routes[:] = [*self.head, *ordered, *tail]

    def load(self) -> None:
        if not self.loaded:
            t0 = time.process_time()
            self.include(ROUTERS)
            self.loaded = True
            log.debug("API routers loaded in %.0f ms of CPU", (time.process_time() - t0) * 1000)


class LoadRouters:
    """Pure ASGI: loads the routers not built at start before the first request that may need them."""

    def __init__(self, app: ASGIApp, routers: Routers) -> None:
        self.app = app
        self.routers = routers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        routers = self.routers
        if not routers.loaded and scope["type"] == "http" and scope["path"] not in routers.eager_paths:
            routers.load()
        await self.app(scope, receive, send)


async def gateway_error_response(request: Request, exc: Exception) -> JSONResponse:
    """The one translation of the product's exceptions into HTTP: the error's own status, its
    ``detail`` (the shape HTTPException bodies have, which clients read) and its stable ``code``."""
    assert isinstance(exc, GatewayError)  # registered for GatewayError only
    if exc.http_status >= 500:
        log.error("%s %s failed: %s: %s", request.method, request.url.path, exc.code, exc)
    return JSONResponse({"detail": exc.response_detail(), "code": exc.code}, status_code=exc.http_status)


def create_app(gw: Gateway, *, first_start_token: bool = True) -> FastAPI:
    from gateway.api.stream import Hub

    settings = gw.cfg.api
    ctx = ApiContext(
        gw=gw,
        readers=Readers(gw.store_path, settings.reader_threads),
        verifier=auth.TokenVerifier(),
        limiter=auth.AuthFailureLimiter(settings.rate_limits.auth_failures, settings.rate_limits.auth_window_s),
        role_limiter=auth.RoleRateLimiter(settings.rate_limits.per_minute),
        signin_limiter=auth.AuthFailureLimiter(
            settings.rate_limits.signin_failures, settings.rate_limits.auth_window_s
        ),
    )
    hub = Hub(ctx, settings.sse_queue_max)
    ctx.hub = hub

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        hub.start()
        gw.add_listener(hub.on_commit)
        if first_start_token:
            try:
                await asyncio.to_thread(auth.ensure_installer_token, gw)
            except Exception as exc:  # the API still serves; tokens can be made with the CLI
                log.error("could not set up the installer token: %s", exc)
        try:
            yield
        finally:
            await hub.stop()
            ctx.readers.close()

    app = FastAPI(
        title="Community Edge Gateway",
        version="1.0.0",
        description="Staff and central-platform API of one community gateway. See docs/api.md.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        lifespan=lifespan,
    )
    app.add_exception_handler(GatewayError, gateway_error_response)
    # every refusal carries a stable ``code`` the console translates (gateway/api/problems.py)
    app.add_exception_handler(StarletteHTTPException, problems.http_error_response)
    app.add_exception_handler(RequestValidationError, problems.validation_error_response)
    app.state.ctx = ctx
    app.state.close_streams = hub.close_streams
    app.state.governor = governor_stats = GovernorStats()
    routers = Routers(app)
    routers.include(EAGER_ROUTERS)
    routers.eager_paths = {
        r.path for name in EAGER_ROUTERS for r in importlib.import_module(f"gateway.api.{name}").router.routes
    }
    app.state.routers = routers
    app.add_middleware(LoadRouters, routers=routers)  # innermost (added first): the governor counts a load
    app.add_middleware(Governor, share=settings.max_busy_share, behind=lambda: ingest_behind(gw), stats=governor_stats)
    app.add_middleware(SecurityHeaders)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "Last-Event-ID"],
        )

    @app.get("/", include_in_schema=False)
    async def root() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=307)

    if CONSOLE_DIR.is_dir():
        app.mount("/console", StaticFiles(directory=CONSOLE_DIR, html=True), name="console")
    if RESIDENT_DIR.is_dir():  # the residents' pages: static, text-only rendering, same strict CSP
        app.mount("/r", StaticFiles(directory=RESIDENT_DIR), name="resident")
    from gateway.api.site_schema import serve_site_schema

    serve_site_schema(app, lambda: gw.cfg)  # the manual-incident body names this site's ids
    site_openapi = app.openapi

    def openapi() -> dict[str, Any]:
        routers.load()  # the document lists every route
        return site_openapi()

    app.openapi = openapi  # type: ignore[method-assign]
    return app
