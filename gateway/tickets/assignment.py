"""Routing: category + location -> team -> person, from the site config and duty rosters.

Rules (docs/tickets.md "Dispatch"), first match wins:

1. ``eldercare`` with a resident: the resident's elder-care worker if on duty, else the on-duty
   member of the worker's elder-care team (then the first elder-care team).
   ``eldercare`` without a resident: the elder-care team.
2. ``parking`` and ``security``: the on-duty member of the compound's property duty team.
3. ``device_health``: the maintenance contact (``tickets.maintenance_contact``: a staff or team id;
   default the first team of kind maintenance).
4. Anything still without an owner: the grid worker of the incident's grid (building's grid).
5. Nothing at all (no building, grid or compound): ``tickets.fallback_team`` (default the first
   community_office team).

"On duty" comes from ``tickets.rosters`` in the site's time zone; a team without a roster is
always on duty (members in listed order); a roster with nobody on shift now falls back to the
team's members (recorded as ``roster: "nobody_on_shift"``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from edge_config import SiteConfig, Team
    from edge_config.channel_settings import QuietHours
    from edge_config.ticket_settings import Roster, Shift

GRID_TEAM_PREFIX = "grid:"


@dataclass(frozen=True, slots=True)
class Route:
    person: str | None
    team: str | None
    role: str | None
    rule: str  # which dispatch rule matched (recorded on the dispatched event)
    detail: Mapping[str, Any] = field(default_factory=dict)


def local_time(cfg: SiteConfig, now_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now_ms / 1000, ZoneInfo(cfg.gateway.timezone))


def _in_shift(shift: Shift | QuietHours, t: dt.datetime) -> bool:
    wd = t.isoweekday()
    now = t.time()
    start, end = shift.start, shift.end
    if start == end:  # 24 h from start
        prev = 7 if wd == 1 else wd - 1
        return (wd in shift.days and now >= start) or (prev in shift.days and now < start)
    if start < end:
        return wd in shift.days and start <= now < end
    prev = 7 if wd == 1 else wd - 1
    return (wd in shift.days and now >= start) or (prev in shift.days and now < end)


def roster_of(cfg: SiteConfig, team_id: str) -> Roster | None:
    return next((r for r in cfg.tickets.rosters if r.team == team_id), None)


def on_duty(cfg: SiteConfig, team_id: str, now_ms: int) -> tuple[list[str], str]:
    """Members of ``team_id`` on duty now (in call order) and how that was decided."""
    team = cfg.team(team_id)
    members = list(team.members) if team is not None else []
    roster = roster_of(cfg, team_id)
    if roster is None:
        return members, "no_roster"
    t = local_time(cfg, now_ms)
    out: list[str] = []
    for shift in roster.shifts:
        if _in_shift(shift, t):
            out += [m for m in shift.members if m not in out]
    if out:
        return out, "on_shift"
    return members, "nobody_on_shift"


def is_on_duty(cfg: SiteConfig, team_id: str, person: str, now_ms: int) -> bool:
    people, how = on_duty(cfg, team_id, now_ms)
    return how == "no_roster" or (how == "on_shift" and person in people)


def team_of_kind(cfg: SiteConfig, kind: str, *, member: str | None = None, compound: str | None = None) -> Team | None:
    teams = [t for t in cfg.teams if t.kind == kind]
    if member is not None:
        mine = [t for t in teams if member in t.members]
        if mine:
            return mine[0]
    if compound is not None:
        mine = [t for t in teams if t.compound == compound]
        if mine:
            return mine[0]
    return teams[0] if teams else None


def department_team(cfg: SiteConfig, department: str) -> Team | None:
    return next((t for t in cfg.teams if t.kind == "department" and t.department == department), None)


def teams_of(cfg: SiteConfig, person: str) -> list[Team]:
    return [t for t in cfg.teams if person in t.members]


def role_of(cfg: SiteConfig, person: str | None) -> str | None:
    m = cfg.staff_member(person) if person else None
    return m.role if m is not None else None


# Any: detail values go into the route's JSON detail
def route_team(cfg: SiteConfig, team_id: str, now_ms: int, rule: str, **detail: Any) -> Route | None:
    people, how = on_duty(cfg, team_id, now_ms)
    if not people:
        return None
    return Route(people[0], team_id, role_of(cfg, people[0]), rule, {"roster": how, **detail})


def compound_of(cfg: SiteConfig, incident: Mapping[str, Any]) -> str | None:
    if incident.get("compound"):
        return str(incident["compound"])
    b = incident.get("building")
    if b:
        c = cfg.compound_of_building(b)
        if c is not None:
            return str(c.id)
    space = incident.get("space")
    if space:
        found = cfg.parking_space(space)
        if found is not None:
            return str(found[0].compound)
    return None


def grid_of(cfg: SiteConfig, incident: Mapping[str, Any]) -> str | None:
    if incident.get("grid"):
        return str(incident["grid"])
    b = incident.get("building")
    if b:
        g = cfg.grid_of_building(b)
        if g is not None:
            return str(g.id)
    return None


def grid_route(cfg: SiteConfig, grid_id: str | None, rule: str = "grid_worker") -> Route | None:
    g = cfg.grid(grid_id) if grid_id else None
    if g is None or not g.grid_worker:
        return None
    return Route(g.grid_worker, GRID_TEAM_PREFIX + g.id, role_of(cfg, g.grid_worker), rule, {"grid": g.id})


def route(cfg: SiteConfig, incident: Mapping[str, Any], now_ms: int) -> Route | None:
    """Who gets this incident now; None when the site config names nobody at all."""
    cat = incident.get("category")
    found: Route | None = None
    if cat == "eldercare":
        found = _eldercare(cfg, incident, now_ms)
    elif cat in ("parking", "security"):
        compound = compound_of(cfg, incident)
        c = cfg.compound(compound) if compound else None
        if c is not None:
            found = route_team(cfg, c.property_company.duty_team, now_ms, "property_duty", compound=c.id)
    elif cat == "device_health":
        found = _maintenance(cfg, now_ms)
    if found is None:
        found = grid_route(cfg, grid_of(cfg, incident))
    if found is None:
        found = fallback(cfg, now_ms)
    return found


def fallback(cfg: SiteConfig, now_ms: int) -> Route | None:
    team_id = cfg.tickets.fallback_team
    if team_id is None:
        t = team_of_kind(cfg, "community_office")
        team_id = t.id if t is not None else None
    return route_team(cfg, team_id, now_ms, "fallback") if team_id else None


def _eldercare(cfg: SiteConfig, incident: Mapping[str, Any], now_ms: int) -> Route | None:
    rid = incident.get("resident_id")
    res = cfg.resident(rid) if rid else None
    if res is not None:
        worker = res.eldercare_worker
        team = team_of_kind(cfg, "eldercare", member=worker)
        if team is None or is_on_duty(cfg, team.id, worker, now_ms):
            return Route(worker, team.id if team else None, role_of(cfg, worker), "eldercare_worker")
        r = route_team(cfg, team.id, now_ms, "eldercare_team", assigned_worker_off_duty=worker)
        if r is not None:
            return r
    team = team_of_kind(cfg, "eldercare")
    return route_team(cfg, team.id, now_ms, "eldercare_team") if team is not None else None


def _maintenance(cfg: SiteConfig, now_ms: int) -> Route | None:
    contact = cfg.tickets.maintenance_contact
    if contact is not None:
        if cfg.team(contact) is not None:
            return route_team(cfg, contact, now_ms, "maintenance")
        if cfg.staff_member(contact) is not None:
            t = teams_of(cfg, contact)
            return Route(contact, t[0].id if t else None, role_of(cfg, contact), "maintenance")
    team = team_of_kind(cfg, "maintenance")
    return route_team(cfg, team.id, now_ms, "maintenance") if team is not None else None


def person_route(cfg: SiteConfig, person: str, rule: str = "manual") -> Route | None:
    """A named person (manual dispatch/reassign): team = their first team, or their grid."""
    m = cfg.staff_member(person)
    if m is None:
        return None
    t = teams_of(cfg, person)
    team = t[0].id if t else None
    if team is None:
        g = next((g for g in cfg.site.grids if g.grid_worker == person), None)
        team = GRID_TEAM_PREFIX + g.id if g is not None else None
    return Route(person, team, m.role, rule)


def team_members(cfg: SiteConfig, team: str | None) -> list[str]:
    if not team:
        return []
    if team.startswith(GRID_TEAM_PREFIX):
        g = cfg.grid(team[len(GRID_TEAM_PREFIX) :])
        return [g.grid_worker] if g is not None and g.grid_worker else []
    t = cfg.team(team)
    return list(t.members) if t is not None else []
