"""HTTP API served by the gateway process (FastAPI on the asyncio loop).

Liveness needs no token; everything else is added with role-based tokens (see README).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI


def create_app(gw: Any) -> FastAPI:
    app = FastAPI(title="Community Edge Gateway", version="0.1.0", docs_url=None, redoc_url=None)

    @app.get("/healthz", tags=["health"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "gateway": gw.cfg.gateway.id}

    return app
