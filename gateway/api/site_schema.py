"""The running site's ids in the OpenAPI document, for ``POST /api/v1/incidents``.

Which buildings, units, grids, compounds and parking spaces exist is in the site file, not in the
code, yet it decides whether a manual incident is accepted. So the served document is patched from
the config the gateway runs with: ``ManualLocation``'s place fields get the site's ids as enums,
and "a unit only with its building" becomes one branch per building listing that building's units.
The patch is rebuilt when the config object changes (a reload), so the document and the route's
checks (gateway/api/routes_incidents.py) always use the same config.

Decided against: a pydantic model built per config (the route's body type is fixed at import) and
enums in the static model (the code cannot know a site's ids). The document lists ids only (no
names, no personal data: residents and staff are not places).

What no schema can express, and so may still refuse a schema-valid body: a scoped token's places
outside its grids/compounds (403), a ``request_id`` already used for a different action (409
``request_id_reused``), the token's rate limit (429) and a busy gateway (503).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from edge_config import SiteConfig


def site_ids(cfg: SiteConfig) -> dict[str, list[str]]:
    """The ids a manual incident's location may name, per field (sorted)."""
    buildings = [b for c in cfg.site.compounds for b in c.buildings]
    return {
        "building": sorted(b.id for b in buildings),
        "unit": sorted({u.id for b in buildings for u in b.units}),
        "grid": sorted(g.id for g in cfg.site.grids),
        "compound": sorted(c.id for c in cfg.site.compounds),
        "space": sorted(s.id for a in cfg.site.parking_areas for s in a.spaces),
    }


def location_schema(static: dict[str, Any], cfg: SiteConfig) -> dict[str, Any]:
    """``static`` (ManualLocation's generated schema) with the site's ids stated."""
    from gateway.api.models import PLACES  # the API's models: ~14 ms of CPU, built with the document

    out = copy.deepcopy(static)
    ids = site_ids(cfg)
    for field, values in ids.items():
        prop = out["properties"][field]
        choices: list[dict[str, Any]] = [{"type": "null"}]
        if values:  # an empty enum is no valid schema: a site without spaces takes only null
            choices.insert(0, {"type": "string", "enum": values})
        out["properties"][field] = {k: v for k, v in prop.items() if k not in ("anyOf", "pattern")} | {"anyOf": choices}
    one_place = {
        "anyOf": [
            {"required": [k], "properties": {k: {"type": "string"}}} for k in PLACES if ids[k]
        ]  # a branch no value could satisfy is left out
    }
    unit_in_building = {
        "anyOf": [
            {"not": {"required": ["unit"]}},
            {"properties": {"unit": {"type": "null"}}},
            *(
                {
                    "required": ["building", "unit"],
                    "properties": {"building": {"const": b.id}, "unit": {"enum": sorted(u.id for u in b.units)}},
                }
                for c in cfg.site.compounds
                for b in c.buildings
                if b.units
            ),
        ]
    }
    out["allOf"] = [one_place, unit_in_building]
    return out


def serve_site_schema(app: FastAPI, cfg_of: Callable[[], SiteConfig]) -> None:
    """Make ``app.openapi()`` (the served /api/v1/openapi.json) carry the site's ids."""
    generate = app.openapi  # FastAPI's own: builds once and caches in app.openapi_schema
    cached: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        cfg = cfg_of()
        if cached.get("cfg") is not cfg:
            app.openapi_schema = None
            doc = generate()
            schemas = doc["components"]["schemas"]
            schemas["ManualLocation"] = location_schema(schemas["ManualLocation"], cfg)
            app.openapi_schema = doc
            cached.update(cfg=cfg, doc=doc)
        result: dict[str, Any] = cached["doc"]
        return result

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise
