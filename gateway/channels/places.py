"""Where and how many, for message texts: an incident's place down to the floor, flat and area,
its device count, and the per-building breakdown of a group.

The incident row holds compound/building/unit/space; the floor, flat and area come from the
configured location of the incident's device (``devices[].location``). Flats are personal data
when they are a resident's: a resident's flat (``residents[].room``, or the flat of a device linked
to a resident) only goes where ``elder_care`` allows; a device's own flat with no resident (a
smoke detector in flat 301) is the alarm's place and goes to everyone who gets the alarm.

Counts: the offline groups carry ``offline_count`` in their detail (else their devices are counted);
other incidents count the configured devices they name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from edge_config import SiteConfig

# Incident types whose size is a number of devices (a storm, an outage), shown as such.
DEVICE_COUNT_TYPES = frozenset(
    {"device_offline", "building_offline", "compound_offline", "bridge_offline", "lorawan_gateway_silent"}
)


@dataclass
class Place:
    compound: str | None = None
    building: str | None = None  # name
    unit: str | None = None  # name
    floor: int | None = None
    room: str | None = None
    area: str | None = None
    space: str | None = None
    grid: str | None = None
    released: list[str] = field(default_factory=list)  # personal fields shown ('room')

    def where(self, lang: str, *, compound: bool = True) -> str:
        parts = [p for p in (self.compound if compound else None, self.building, self.unit) if p]
        if self.floor is not None:
            parts.append(f"{self.floor}层" if lang == "zh" else f"floor {self.floor}")
        if self.room:
            parts.append(f"{self.room}室" if lang == "zh" else f"flat {self.room}")
        if self.area:
            parts.append(self.area)
        if self.space:
            parts.append(("车位 " if lang == "zh" else "space ") + self.space)
        if not parts and self.grid:
            parts.append(self.grid)
        return " ".join(parts)

    def spot(self, lang: str) -> str:
        """The part below the building and unit: '12层 1201室', '大堂'."""
        inner = Place(floor=self.floor, room=self.room, area=self.area, space=self.space)
        return inner.where(lang, compound=False)


def _device_location(cfg: SiteConfig, incident: Mapping[str, Any]) -> tuple[Any, bool]:
    """The configured location of a single-device incident's device, and whether that device is a resident's."""
    devices = incident.get("devices") or []
    if len(devices) != 1:
        return None, False
    dev = cfg.device(str(devices[0]))
    if dev is None:
        return None, False
    return dev.location, dev.resident is not None


def place_of(cfg: SiteConfig, incident: Mapping[str, Any], *, elder_care: bool = False) -> Place:
    p = Place()
    b = incident.get("building")
    compound = cfg.compound(incident["compound"]) if incident.get("compound") else None
    if compound is None and b:
        compound = cfg.compound_of_building(b)
    p.compound = compound.name if compound is not None else None
    building = cfg.building(b) if b else None
    if building is not None:
        p.building = building.name
        unit = building.unit(incident["unit"]) if incident.get("unit") else None
        p.unit = unit.name if unit is not None else None
    elif b:
        p.building = str(b)
    p.space = str(incident["space"]) if incident.get("space") else None
    if incident.get("grid"):
        g = cfg.grid(incident["grid"])
        p.grid = g.name if g is not None else str(incident["grid"])
    loc, residents_device = _device_location(cfg, incident)
    resident = cfg.resident(incident["resident_id"]) if incident.get("resident_id") else None
    if loc is not None:
        p.floor = loc.floor
        p.area = loc.area
        if loc.room and resident is None and not residents_device:
            p.room = loc.room  # a flat's own detector: the place of the alarm, not a person's data
    detail = incident.get("detail") or {}
    if not p.area and isinstance(detail, Mapping) and detail.get("area"):
        p.area = str(detail["area"])
    if elder_care and resident is not None and (resident.room or (loc is not None and loc.room)):
        p.room = resident.room or (loc.room if loc is not None else None)
        p.released.append("room")
    return p


def device_count(cfg: SiteConfig, incident: Mapping[str, Any]) -> int:
    """Devices the incident is about: ``offline_count`` of an offline group, else the configured devices it names."""
    detail = incident.get("detail") or {}
    if isinstance(detail, Mapping) and isinstance(detail.get("offline_count"), int):
        return int(detail["offline_count"])
    return sum(1 for d in incident.get("devices") or [] if cfg.device(str(d)) is not None)


def counts_devices(incidents: Sequence[Mapping[str, Any]]) -> bool:
    return bool(incidents) and all(i.get("type") in DEVICE_COUNT_TYPES for i in incidents)


def since_ms(incident: Mapping[str, Any]) -> int | None:
    """Since when: the group's own 'since' when the detection recorded one, else the first trigger."""
    detail = incident.get("detail") or {}
    if isinstance(detail, Mapping):
        for k in ("since_ms", "offline_since_ms"):
            if isinstance(detail.get(k), int):
                return int(detail[k])
    first = incident.get("first_ms")
    return int(first) if first else None


def _building_name(cfg: SiteConfig, building_id: str | None, lang: str) -> str:
    b = cfg.building(building_id) if building_id else None
    if b is not None:
        return b.name
    return str(building_id) if building_id else ("其他" if lang == "zh" else "other")


def _device_building(cfg: SiteConfig, device_id: str) -> str | None:
    dev = cfg.device(device_id)
    if dev is None:
        return None
    if dev.location.building:
        return dev.location.building
    if dev.resident:
        r = cfg.resident(dev.resident)
        return r.building if r is not None else None
    return None


def per_building(cfg: SiteConfig, incidents: Sequence[Mapping[str, Any]], lang: str) -> list[tuple[str, int]]:
    """[(building name, count)] in site order: devices for offline storms (an incident without a
    building, such as a compound outage, is split by its devices' buildings), incidents otherwise."""
    by_devices = counts_devices(incidents)
    counts: dict[str | None, int] = {}
    for i in incidents:
        if not by_devices:
            counts[i.get("building")] = counts.get(i.get("building"), 0) + 1
        elif i.get("building"):
            counts[i["building"]] = counts.get(i["building"], 0) + device_count(cfg, i)
        else:
            for d in i.get("devices") or []:
                if cfg.device(str(d)) is not None:
                    b = _device_building(cfg, str(d))
                    counts[b] = counts.get(b, 0) + 1
    order = {b.id: n for n, b in enumerate(b for c in cfg.site.compounds for b in c.buildings)}
    keys = sorted(counts, key=lambda k: (order.get(k, len(order)) if k else len(order) + 1, str(k)))
    return [(_building_name(cfg, k, lang), counts[k]) for k in keys]


def place_list(places: Sequence[Place], lang: str) -> str:
    """Every place, compactly: '1号楼 1单元: 301室、302室×2; 2号楼 1单元: 大堂'."""
    groups: dict[str, dict[str, int]] = {}
    for p in places:
        head = " ".join(x for x in (p.building, p.unit) if x) or (p.compound or p.grid or "-")
        spots = groups.setdefault(head, {})
        spot = p.spot(lang)
        spots[spot] = spots.get(spot, 0) + 1
    sep, list_sep = ("、", "; ") if lang == "zh" else (", ", "; ")
    out = []
    for head, spots in groups.items():
        named = [f"{s}×{n}" if n > 1 else s for s, n in spots.items() if s]
        unnamed = spots.get("", 0)
        if unnamed:
            named.append(f"×{unnamed}" if named or unnamed > 1 else "")
        inner = sep.join(x for x in named if x)
        out.append(f"{head}: {inner}" if inner else head)
    return list_sep.join(out)
