"""Who is asked to evaluate a handled incident, and the requests that record it.

When a rated incident is resolved (docs/tickets.md "Residents"):

- an incident of a configured resident (elder care): the resident, or the registered family
  contact (``evaluation_by: family``, or the resident has no phone);
- a problem a resident reported through a building's QR code: the reporter;
- any other incident at a building or compound (a common area): the unit contacts configured for
  that place (``resident_loop.evaluation.common_areas``), or nobody.

Each person asked gets an ``evaluation_requests`` row (the first answer wins; the rest are closed),
and, with a phone and an SMS gateway, a ``resident_messages`` row that the sender delivers. The
ticket's rating timer is moved to the request's deadline with reason ``no_response``: nobody
answering is recorded as such, never as a rating. Everything runs in the caller's transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

ACTOR = "residents"
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class Ask:
    recipient: str  # resident | family | reporter | unit_contact
    phone: str | None
    resident_id: str | None = None
    report_id: int | None = None
    unit: str | None = None


def who_evaluates(conn: sqlite3.Connection, cfg: SiteConfig, incident: Mapping[str, Any]) -> list[Ask]:
    rid = incident.get("resident_id")
    if isinstance(rid, str) and (res := cfg.resident(rid)) is not None:
        family = res.evaluation_by == "family" or not res.phone
        if family and res.family_phone:
            return [Ask("family", res.family_phone, resident_id=rid)]
        return [Ask("resident", res.phone, resident_id=rid)]  # no phone: a QR code printed on a visit
    row = conn.execute(
        "SELECT id, phone FROM resident_reports WHERE incident_id=? ORDER BY id LIMIT 1", (incident["id"],)
    ).fetchone()
    if row is not None:
        return [Ask("reporter", row[1], report_id=int(row[0]))]
    ev = cfg.resident_loop.evaluation
    building, compound = incident.get("building"), incident.get("compound")
    areas = [a for a in ev.common_areas if building is not None and a.building == building]
    areas = areas or [a for a in ev.common_areas if compound is not None and a.compound == compound]
    phones = {f"{c.building}/{c.unit}": c.phone for c in ev.unit_contacts}
    units = list(dict.fromkeys(u for a in areas for u in a.units))
    return [Ask("unit_contact", phones.get(u), unit=u) for u in units]


def sms_possible(cfg: SiteConfig) -> bool:
    rl = cfg.resident_loop
    return bool(rl.evaluation.sms and rl.base_url and cfg.channels.sms is not None)


def create_requests(
    conn: sqlite3.Connection, result: BatchResult, ctx: lc.TicketContext, incident: Mapping[str, Any], now_ms: int
) -> list[int]:
    """Ask whoever evaluates this resolved incident; returns the request ids (none: nobody to ask)."""
    cfg = ctx.cfg
    asks = who_evaluates(conn, cfg, incident)
    if not asks:
        return []
    iid = str(incident["id"])
    due = now_ms + int(cfg.resident_loop.evaluation.no_response_days * DAY_MS)
    ids = []
    for a in asks:
        cur = conn.execute(
            "INSERT INTO evaluation_requests(incident_id, created_ms, due_ms, recipient, resident_id, report_id, unit,"
            " phone) VALUES (?,?,?,?,?,?,?,?)",
            (iid, now_ms, due, a.recipient, a.resident_id, a.report_id, a.unit, a.phone),
        )
        req = int(cur.lastrowid or 0)
        ids.append(req)
        by = "visit"  # no phone or no SMS gateway: a staff member prints the QR code on a visit
        if a.phone and sms_possible(cfg):
            conn.execute(
                "INSERT INTO resident_messages(request_id, created_ms, next_ms) VALUES (?,?,?)", (req, now_ms, 0)
            )
            by = "sms"
        # no phone number in the event: the timeline and the feed go to staff and the central platform
        data = {"request": req, "recipient": a.recipient, "by": by, "due_ms": due}
        ctx.incidents.append_event(conn, result, iid, "evaluation_requested", now_ms, data, actor=ACTOR)
    lc.timer_set(conn, iid, "rating", due, {"reason": "no_response"})
    return ids


def settle(conn: sqlite3.Connection, incident_id: str, status: str, now_ms: int, source: str | None = None) -> int:
    """End the incident's pending requests (answered elsewhere, closed, or no response). The phone
    is only needed to send the link: it goes with the request."""
    cur = conn.execute(
        "UPDATE evaluation_requests SET status=?, answered_ms=?, source=?, phone=NULL"
        " WHERE incident_id=? AND status='pending'",
        (status, now_ms, source, incident_id),
    )
    conn.execute(
        "UPDATE resident_messages SET status='failed', last_error='request closed', done_ms=?"
        " WHERE status='pending' AND request_id IN (SELECT id FROM evaluation_requests WHERE incident_id=?)",
        (now_ms, incident_id),
    )
    return cur.rowcount


# Who handled it when the assignee has no team: the service, by the assignee's role.
_SERVICE = {
    "eldercare_worker": ("居家养老服务", "home elder-care service"),
    "property_staff": ("物业服务", "property management"),
    "maintenance": ("设备维护", "maintenance"),
    "grid_worker": ("网格员", "grid worker"),
}


def team_label(cfg: SiteConfig, team: str | None, lang: str, role: str | None = None) -> str:
    """Who handled it, as a team (never a person's name: the page shows nothing personal of others)."""
    if not team:
        zh, en = _SERVICE.get(role or "", ("社区", "the community"))
        return zh if lang == "zh" else en
    if team.startswith("grid:"):
        g = cfg.grid(team[5:])
        name = g.name if g is not None else team[5:]
        return f"{name}网格员" if lang == "zh" else f"grid worker of {name}"
    t = cfg.team(team)
    return t.name if t is not None else team
