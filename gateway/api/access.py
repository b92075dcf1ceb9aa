"""Who may do what, and what each role sees of an incident or device.

One place for the rules (docs/api.md "Roles"):
- ``PERMISSIONS``: which roles may use which endpoint group (else 403).
- Scope: a token scoped to grids/compounds sees incidents and devices in those only (SQL for lists:
  :func:`incident_scope_sql`; one function for detail, stream and feed: :func:`incident_visible`).
- Personal data of residents (name, flat, health readings, home location, device ids in the home)
  is shown only to ``PERSONAL_ROLES``. Others see that an elder-care incident exists in their
  grid/compound (category, type, severity, state, times) and nothing more.
- Escalation recipients (``ESCALATION_ROLES``) see the location they must go to (building, unit,
  floor, flat) of an incident escalated (dispatched / whistled) to them; every such release is
  written to ``access_log`` (as is every view of personal data by the personal roles).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.api.auth import ROLES, Principal
from gateway.core.contract import IncidentEvent

if TYPE_CHECKING:
    from edge_config import Resident, SiteConfig

ALL = frozenset(ROLES)
STAFF = frozenset(
    {"installer", "property_staff", "eldercare_worker", "grid_worker", "community_office", "street_office"}
)

PERMISSIONS: dict[str, frozenset[str]] = {
    "incidents.read": ALL,
    "incidents.act": ALL,  # which action a role may take on which state: the ticket loop decides
    "incidents.create": (STAFF | {"central_platform"}),
    "devices.read": STAFF,
    "devices.installer": frozenset({"installer"}),  # dead letters, unconfigured devices
    "site.read": ALL,
    "scorecard.read": frozenset(
        {"installer", "property_staff", "community_office", "street_office", "central_platform"}
    ),
    "feed.read": frozenset({"installer", "central_platform"}),
    "stream": ALL,
    "health.read": frozenset({"installer", "central_platform"}),  # /readyz, /metrics
    "me": ALL,
    "access_log.read": frozenset({"installer"}),  # who saw residents' personal data, and why
    "resident.forget": frozenset({"installer"}),
    "sessions.own": ALL,  # a person's own device sessions: list, sign out
    "sessions.manage": frozenset({"installer"}),  # everyone's sessions; one-time sign-in links
    # an evaluation QR code printed on a visit: staff who visit residents (the ticket loop refuses
    # anyone who worked the incident); a building's report QR code: the installer
    "resident.print": frozenset({"grid_worker", "community_office", "street_office"}),
    "resident.qr": frozenset({"installer"}),
}

PERSONAL_ROLES = frozenset({"installer", "eldercare_worker"})
ESCALATION_ROLES = frozenset({"grid_worker", "community_office", "street_office", "department"})
# Roles that only ever see incidents escalated to them (a department: summoned by 吹哨报到).
ESCALATED_ONLY = frozenset({"department"})

# Keys never shown to a viewer without the personal roles (event data, incident detail).
PERSONAL_KEYS = frozenset(
    {
        "resident",
        "key",
        "resident_id",
        "resident_name",
        "readings",
        "reading",
        "values",
        "building",
        "unit",
        "floor",
        "room",
        "space",
        "location",
        "devices",
        "devices_added",
        "device",
        "detail",
        "address",
        "phone",
    }
)

LOCATION_FIELDS = ("building", "unit", "floor", "room")


def allowed(p: Principal, perm: str) -> bool:
    return p.role in PERMISSIONS[perm]


def is_personal(inc: Mapping[str, Any]) -> bool:
    return inc.get("category") == "eldercare" or bool(inc.get("resident_id"))


def escalated_for(p: Principal, row: Mapping[str, Any], cfg: SiteConfig) -> bool:
    """Was the incident handed to ``p``'s role by the ticket loop (table ``tickets``)?

    A department: it was summoned (``summons``, 吹哨报到). Grid workers and community/street
    offices: the ticket is assigned to their role, or an escalation rung notified one of them
    (``watchers``: staff ids). Routine dispatch to the duty team is not an escalation.
    """
    if p.role == "department":
        return bool(row.get("summons"))
    if p.role not in ESCALATION_ROLES:
        return False
    if row.get("assignee_role") == p.role:
        return True
    for staff_id in row.get("watchers") or ():
        m = cfg.staff_member(staff_id) if isinstance(staff_id, str) else None
        if m is not None and m.role == p.role:
            return True
    return False


def incident_scope_sql(p: Principal, has_tickets: bool, alias: str = "incidents") -> tuple[str, list[Any]]:
    """WHERE fragment (without 'WHERE') limiting incidents to what ``p`` may see; '1' = all.

    With ``has_tickets`` the query joins ``tickets t``."""
    parts: list[str] = []
    params: list[Any] = []
    if p.scoped:
        ors = []
        if p.grids:
            ors.append(f"{alias}.grid IN ({','.join('?' * len(p.grids))})")
            params += sorted(p.grids)
        if p.compounds:
            ors.append(f"{alias}.compound IN ({','.join('?' * len(p.compounds))})")
            params += sorted(p.compounds)
        parts.append("(" + " OR ".join(ors) + ")")
    if p.role in ESCALATED_ONLY:
        parts.append("(t.summons IS NOT NULL AND t.summons <> '[]')" if has_tickets else "0")
    return (" AND ".join(parts) or "1"), params


def in_scope(p: Principal, grid: str | None, compound: str | None) -> bool:
    if not p.scoped:
        return True
    return (grid is not None and grid in p.grids) or (compound is not None and compound in p.compounds)


def incident_visible(p: Principal, inc: Mapping[str, Any], cfg: SiteConfig) -> bool:
    if not in_scope(p, inc.get("grid"), inc.get("compound")):
        return False
    return not (p.role in ESCALATED_ONLY and not escalated_for(p, inc, cfg))


def redact_data(data: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in PERSONAL_KEYS}


class Release:
    """Personal data / locations released in one response (written to access_log by the caller)."""

    def __init__(self) -> None:
        self.rows: list[tuple[str, str | None, str, list[str]]] = []  # incident, resident, reason, fields

    def add(self, incident_id: str, resident_id: str | None, reason: str, fields: Iterable[str]) -> None:
        self.rows.append((incident_id, resident_id, reason, list(fields)))


BASE_FIELDS = (
    "id",
    "category",
    "type",
    "severity",
    "state",
    "life_safety",
    "grid",
    "compound",
    "first_ms",
    "last_ms",
    "count",
    "previous_id",
    "auto_cleared_ms",
    "cleared_reason",
    "created_ms",
    "updated_ms",
)
PLACE_FIELDS = ("building", "unit", "space")
TICKET_FIELDS = ("assignee", "team", "assignee_role", "level", "summons", "rating")
TICKET_JSON = frozenset({"summons", "watchers"})  # the ticket loop's JSON columns


def _floor(cfg: SiteConfig, devices: list[str], resident: Resident | None) -> int | None:
    for dev_id in devices:
        d = cfg.device(dev_id)
        if d is not None and d.location.floor is not None:
            return int(d.location.floor)
    room = getattr(resident, "room", None)
    if isinstance(room, str) and room.isdigit() and len(room) >= 3:
        return int(room[:-2])  # '1201' -> 12
    return None


# What a personal-data role sees of the resident of an elder-care incident (each view is logged
# with these field names in access_log): enough to call, find and help the person.
PERSONAL_VIEW_FIELDS = (
    "name",
    "room",
    "phone",
    "emergency_contacts",
    "care_notes",
    "flags",
    "readings",
    "location",
)


def personal_card(
    cfg: SiteConfig, resident_id: str | None, resident: Resident | None, devices: list[str]
) -> dict[str, Any]:
    r = resident
    return {
        "resident_id": resident_id,
        "name": r.name if r is not None else None,
        "building": r.building if r is not None else None,
        "unit": r.unit if r is not None else None,
        "room": r.room if r is not None else None,
        "floor": _floor(cfg, devices, r),
        "phone": r.phone if r is not None else None,
        "emergency_contacts": [c.model_dump() for c in r.emergency_contacts] if r is not None else [],
        "care_notes": r.care_notes if r is not None else None,
        "flags": list(r.flags) if r is not None else [],
    }


def present_incident(p: Principal, inc: Mapping[str, Any], cfg: SiteConfig, release: Release | None) -> dict[str, Any]:
    """The incident as ``p`` may see it. ``inc`` is a row dict (incidents.row_to_dict + ticket columns)."""
    escalated = escalated_for(p, inc, cfg)
    out: dict[str, Any] = {k: inc.get(k) for k in BASE_FIELDS}
    for k in TICKET_FIELDS:
        if k in inc:
            out[k] = inc[k]
    out["escalated"] = escalated
    devices = list(inc.get("devices") or [])
    if not is_personal(inc):
        for k in PLACE_FIELDS:
            out[k] = inc.get(k)
        out["devices"] = devices
        out["readings"] = list(inc.get("readings") or [])
        out["detail"] = dict(inc.get("detail") or {})
        out["personal"] = None
        out["redacted"] = False
        return out
    resident_id = inc.get("resident_id")
    resident = cfg.resident(resident_id) if resident_id else None
    if p.role in PERSONAL_ROLES:
        for k in PLACE_FIELDS:
            out[k] = inc.get(k)
        out["devices"] = devices
        out["readings"] = list(inc.get("readings") or [])
        out["detail"] = dict(inc.get("detail") or {})
        out["personal"] = personal_card(cfg, resident_id, resident, devices)
        out["redacted"] = False
        if release is not None:
            release.add(str(inc["id"]), resident_id, "personal_view", PERSONAL_VIEW_FIELDS)
        return out
    out.update({"building": None, "unit": None, "space": None, "devices": [], "readings": [], "detail": {}})
    out["personal"] = None
    out["redacted"] = True
    if p.role in ESCALATION_ROLES and escalated:
        out["building"] = inc.get("building")
        out["unit"] = inc.get("unit")
        out["location_released"] = {
            "building": inc.get("building"),
            "unit": inc.get("unit"),
            "floor": _floor(cfg, devices, resident),
            "room": resident.room if resident is not None else None,
        }
        if release is not None:
            release.add(str(inc["id"]), resident_id, "escalation_location", LOCATION_FIELDS)
    return out


def present_event(p: Principal, ev: IncidentEvent, inc: Mapping[str, Any] | None) -> dict[str, Any]:
    """A timeline/feed event as ``p`` may see it (personal keys dropped for the others)."""
    data: Mapping[str, Any] = ev.data
    personal = inc is None or is_personal(inc)
    if personal and p.role not in PERSONAL_ROLES:
        data = redact_data(data)
    return {
        "seq": ev.seq,
        "incident_id": ev.incident_id,
        "ts_ms": ev.ts_ms,
        "kind": ev.kind,
        "actor": ev.actor,
        "role": ev.role,
        "data": data,
    }


def device_visible(p: Principal, cfg: SiteConfig, device_id: str) -> bool:
    """Devices in a resident's home are personal: only the personal roles see them."""
    d = cfg.device(device_id)
    if d is None:
        return p.role == "installer"
    if d.resident is not None and p.role not in PERSONAL_ROLES:
        return False
    building = d.location.building
    if building is None and d.resident is not None:
        r = cfg.resident(d.resident)
        building = r.building if r is not None else None
    if building is None and d.location.parking_space is not None:
        found = cfg.parking_space(d.location.parking_space)
        compound = found[0].compound if found is not None else None
        return in_scope(p, None, compound)
    if building is None:
        return not p.scoped
    grid = cfg.grid_of_building(building)
    comp = cfg.compound_of_building(building)
    return in_scope(p, grid.id if grid else None, comp.id if comp else None)
