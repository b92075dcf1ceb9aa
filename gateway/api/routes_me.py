"""/api/v1/me: who the calling token is (role, scope, whether it sees personal data)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from gateway.api import access
from gateway.api.auth import Principal
from gateway.api.deps import ctx_of, require
from gateway.api.models import Me

router = APIRouter(tags=["me"])


@router.get("/api/v1/me", response_model=Me, summary="Who this token is")
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
