"""Per-device facts the device pages and the building summaries filter and count by: grid,
compound and the battery-low threshold. Walking the config for them (device_settings merges type,
space and overrides) is too costly per request, so they are kept until the config object changes
(a reload), like gateway/api/device_views.py does for the views."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_config import SiteConfig


@dataclass(frozen=True, slots=True)
class Facts:
    grid: str | None
    compound: str | None
    battery_low_pct: int | None  # None: mains powered, never "battery low"


_cache: tuple[Any, dict[str, Facts]] = (None, {})


def facts(cfg: SiteConfig) -> dict[str, Facts]:
    """Device id -> Facts for every device this gateway owns (computed once per config)."""
    global _cache
    if _cache[0] is cfg:
        return _cache[1]
    out: dict[str, Facts] = {}
    for d in cfg.owned_devices():
        building = d.location.building
        if building is None and d.resident is not None:
            r = cfg.resident(d.resident)
            building = r.building if r is not None else None
        grid = compound = None
        if building is not None:
            g, c = cfg.grid_of_building(building), cfg.compound_of_building(building)
            grid, compound = (g.id if g else None), (c.id if c else None)
        elif d.location.parking_space is not None:
            found = cfg.parking_space(d.location.parking_space)
            compound = found[0].compound if found is not None else None
        out[d.id] = Facts(grid, compound, cfg.device_settings(d).battery_low_pct)
    _cache = (cfg, out)
    return out


def battery_low(f: Facts | None, battery: float | None) -> bool:
    return f is not None and f.battery_low_pct is not None and battery is not None and battery <= f.battery_low_pct
