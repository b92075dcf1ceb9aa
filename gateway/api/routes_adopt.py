"""/api/v1/adopt: the installer adopts a device "seen, not configured" from the console.

The candidates are the store's unconfigured devices (with the payload last seen, so the installer
can tell a door contact from a smoke detector) less those already in the config. Adopting writes
the site file through the installer tools' own adoption code (comment-preserving, validated
before the file is replaced; handed down as ``gw.site_adopter``, see
gateway/install/adopt_console.py), then reloads the config, which swaps routing between two
batches: the device's next message is stored as a reading, none is lost on the way.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from gateway.api import db
from gateway.api.auth import Principal
from gateway.api.deps import AUTH_ERRORS, ctx_of, require

router = APIRouter(prefix="/api/v1/adopt", tags=["adoption"])
_lock = asyncio.Lock()  # one adoption at a time: each rewrites the whole site file


class AdoptLocation(BaseModel):
    model_config = {"extra": "forbid"}

    building: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    unit: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    floor: int | None = Field(default=None, ge=-10, le=200)
    room: str | None = Field(default=None, max_length=32)
    parking_space: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    area: str | None = Field(default=None, max_length=100)


class AdoptRequest(BaseModel):
    model_config = {"extra": "forbid"}

    driver: str = Field(pattern=r"^[a-z0-9_]{1,32}$", description="The driver that saw it (from the candidates).")
    address: str = Field(min_length=1, max_length=128, description="As listed in the candidates.")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$", description="The new device id.")
    type: str = Field(pattern=r"^[a-z][a-z0-9_]{0,47}$", description="A device type of this site.")
    name: str = Field(default="", max_length=100)
    location: AdoptLocation = Field(default_factory=AdoptLocation)
    resident: str | None = Field(default=None, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")


@router.get(
    "/candidates", summary="Devices seen, not configured, with their payloads (installers)", responses=AUTH_ERRORS
)
async def candidates(
    request: Request, p: Annotated[Principal, Depends(require("devices.installer"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    cfg = ctx.cfg
    rows = await ctx.readers.run(db.unconfigured)
    known = {(d.driver, d.address.lower()) for d in cfg.devices}
    items = [r for r in rows if (r["driver"], str(r["address"]).lower()) not in known]
    types = cfg.device_types_effective()
    return {
        "items": items,
        "types": [{"type": t, "category": s.category} for t, s in sorted(types.items())],
        "can_adopt": getattr(ctx.gw, "site_adopter", None) is not None,
    }


@router.post(
    "",
    summary="Adopt a seen device into the site file, validate, reload (installers)",
    responses={
        **AUTH_ERRORS,
        409: {"description": "this gateway cannot edit its site file (started without the adopter)"},
        422: {"description": "refused: not seen, already configured, or the file would be invalid"},
    },
)
async def adopt(
    request: Request, body: AdoptRequest, p: Annotated[Principal, Depends(require("devices.installer"))]
) -> dict[str, Any]:
    ctx = ctx_of(request)
    gw = ctx.gw
    adopter = getattr(gw, "site_adopter", None)
    path = getattr(gw, "config_path", None) or gw.cfg.source_path
    if adopter is None or path is None:
        # 409: the request is fine; this running gateway cannot do it (started without the adopter)
        raise HTTPException(409, "this gateway was started without a site file it may edit; use edge-gateway adopt")
    if body.type not in ctx.cfg.device_types_effective():
        raise HTTPException(422, "unknown device type for this site")
    fields = body.model_dump()
    fields["location"] = body.location.model_dump(exclude_none=True)
    async with _lock:
        # the file and the config are read and written off the event loop (YAML of a whole community)
        stanza = await asyncio.to_thread(adopter, Path(path), Path(gw.store_path), fields)
        errors = await asyncio.to_thread(gw.reload_from, path)
    if errors:
        raise HTTPException(500, {"message": "the device was written but the reload was refused", "errors": errors})
    return {"device": body.id, "stanza": stanza, "config_revision": gw.cfg.revision}
