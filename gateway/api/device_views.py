"""What the config says of each device, as one role and scope may see it (cached per config).

Shared by the device list (gateway/api/routes_devices.py) and the live stream's device-status events
(gateway/api/stream.py), so both show the same building and hide the same devices.
``access.device_visible`` and ``cfg.device_settings`` walk the config: too costly per request or
per status change, so the results are kept until the config object changes (a reload).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from gateway.api import access
from gateway.api.auth import Principal

if TYPE_CHECKING:
    from edge_config import Device, SiteConfig


@dataclass
class _Cache:
    """The views of one config object. Keyed by the object itself, not its id(): after a reload
    the old config is freed and a new one may get the same id."""

    cfg: SiteConfig | None = None
    static: dict[str, dict[str, Any]] = field(default_factory=dict)
    visible: dict[tuple[Any, ...], dict[str, dict[str, Any]]] = field(default_factory=dict)


_cache = _Cache()


def _cache_of(cfg: SiteConfig) -> _Cache:
    global _cache
    if _cache.cfg is not cfg:  # a reload: start over
        _cache = _Cache(cfg)
    return _cache


def static_views(cfg: SiteConfig) -> dict[str, dict[str, Any]]:
    """The config part of every device view, computed once per config (device_settings is costly)."""
    cache = _cache_of(cfg)
    if not cache.static:
        views: dict[str, dict[str, Any]] = {}
        for d in cfg.owned_devices():
            loc = d.location
            building, unit = loc.building, loc.unit
            resident = cfg.resident(d.resident) if d.resident else None
            if building is None and resident is not None:
                building, unit = resident.building, resident.unit
            views[d.id] = {
                "id": d.id,
                "name": d.name or d.id,
                "type": d.type,
                "driver": d.driver,
                "category": cfg.device_settings(d).category,
                "building": building,
                "unit": unit,
                "floor": loc.floor,
                "area": loc.area,
                "parking_space": loc.parking_space,
                "resident_id": d.resident,
            }
        cache.static = views
    return cache.static


def static_view(p: Principal, static: dict[str, dict[str, Any]], d: Device) -> dict[str, Any]:
    """What the config says of a device, as ``p`` may see it (a copy: callers add live state)."""
    out = dict(static.get(d.id) or {})
    if not out:
        out = {"id": d.id, "name": d.name or d.id, "type": d.type, "driver": d.driver, "category": "device_health"}
    if p.role not in access.PERSONAL_ROLES:
        out["resident_id"] = None
    return out


def visible_devices(p: Principal, cfg: SiteConfig) -> dict[str, dict[str, Any]]:
    """Device id -> static view of every device ``p`` may see, in config order; computed once per
    config, role and scope."""
    cache = _cache_of(cfg)
    key = (p.role, p.grids, p.compounds)
    views = cache.visible.get(key)
    if views is None:
        if len(cache.visible) > 256:
            cache.visible = {}  # many scopes: start over
        static = static_views(cfg)
        views = {d.id: static_view(p, static, d) for d in cfg.owned_devices() if access.device_visible(p, cfg, d.id)}
        cache.visible[key] = views
    return views
