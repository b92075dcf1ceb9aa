"""Problems reported by residents (发现 → 上报 by people, beside the sensors).

Each building has a QR code (a reusable ``report`` link naming the building, printed by the
installer: ``edge-gateway resident report-qr``). The page it opens offers the report types, the
building's units and its common areas. :func:`submit` runs on the writer thread in ONE
transaction: the abuse limits (per QR code per hour, per phone number per day, counted from the
stored reports, so a restart does not reset them), the report row, the incident, its ``reported``
event and the dispatch. The page says "received" only after that commit: a report is never lost
once the resident was told so.

Routing: a resident's report goes first to the grid worker of the building's grid — the first
responder for everything in a grid, who sees it on site and reassigns it (property duty,
maintenance, a department by 吹哨报到) — and to the usual routing when the grid has none.
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any

from gateway.core import incidents as inc
from gateway.core import links
from gateway.residents.evaluation import ResidentRefused
from gateway.tickets import assignment as dp
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

REPORT_PAGE = "/r/report.html"
PHONE = re.compile(r"^\+?[0-9][0-9 -]{4,19}$")
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
ACTOR = "resident"


def report_url(base_url: str, token: str) -> str:
    return f"{base_url}{REPORT_PAGE}#{token}"  # the token in the fragment: never in server logs


def issue_qr(conn: sqlite3.Connection, cfg: SiteConfig, building: str, now_ms: int) -> str:
    """A new QR link for ``building`` (reusable until report.qr_ttl_days; older codes stay valid)."""
    if cfg.building(building) is None:
        raise ResidentRefused("invalid", f"unknown building {building!r}")
    ttl = cfg.resident_loop.report.qr_ttl_days * 86_400
    return links.issue(conn, "report", {"building": building}, ttl_s=ttl, single_use=False, now_ms=now_ms)


def _building(cfg: SiteConfig, link: links.Link) -> str:
    building = link.subject.get("building")
    if not cfg.resident_loop.report.enabled or not isinstance(building, str) or cfg.building(building) is None:
        raise ResidentRefused("reports_off", "reports are not open for this building")
    return building


def view(conn: sqlite3.Connection, cfg: SiteConfig, token: str, now_ms: int) -> dict[str, Any]:
    link = links.verify(conn, token, "report", now_ms=now_ms)
    b = cfg.building(_building(cfg, link))
    assert b is not None
    settings = cfg.resident_loop.report
    return {
        "building": {"id": b.id, "name": b.name},
        "units": [{"id": u.id, "name": u.name} for u in b.units],
        "types": list(settings.types),
        "photo_max_bytes": settings.photo_max_bytes,
    }


def _text(value: object, name: str, limit: int, *, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise ResidentRefused("invalid", f"{name} is required")
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise ResidentRefused("invalid", f"{name} must be text of at most {limit} characters")
    return value.strip()


def submit(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: lc.TicketContext,
    token: str,
    *,
    type: str,
    unit: str | None,
    area: str | None,
    description: str,
    phone: str | None,
    photo: str | None,
    now_ms: int,
) -> dict[str, Any]:
    cfg = ctx.cfg
    link = links.consume(conn, token, "report", now_ms=now_ms)  # reusable: only checked and seen
    building = _building(cfg, link)
    settings = cfg.resident_loop.report
    category = settings.types.get(type) if isinstance(type, str) else None
    if category is None:
        raise ResidentRefused("invalid", f"type must be one of {', '.join(settings.types)}")
    b = cfg.building(building)
    assert b is not None
    if unit is not None and (not isinstance(unit, str) or b.unit(unit) is None):
        raise ResidentRefused("invalid", "unit must be one of the building's units, or none for a common area")
    desc = _text(description, "description", 1000, required=True)
    where = _text(area, "area", 100)
    tel = _text(phone, "phone", 24)
    if tel is not None and not PHONE.match(tel):
        raise ResidentRefused("invalid", "phone must be a phone number")
    n_qr = conn.execute(
        "SELECT count(*) FROM resident_reports WHERE qr=? AND received_ms > ?", (link.id_hash, now_ms - HOUR_MS)
    ).fetchone()[0]
    if n_qr >= settings.per_qr_per_hour:
        raise ResidentRefused("report_limit", "too many reports through this QR code in the last hour")
    if tel is not None:
        n_phone = conn.execute(
            "SELECT count(*) FROM resident_reports WHERE phone=? AND received_ms > ?", (tel, now_ms - DAY_MS)
        ).fetchone()[0]
        if n_phone >= settings.per_phone_per_day:
            raise ResidentRefused("report_limit", "too many reports from this phone number today")
    cur = conn.execute(
        "INSERT INTO resident_reports(received_ms, qr, building, unit, area, type, description, photo, phone)"
        " VALUES (?,?,?,?,?,?,?,?,?)",
        (now_ms, link.id_hash, building, unit, where, type, desc, photo, tel),
    )
    report_id = int(cur.lastrowid or 0)
    compound = cfg.compound_of_building(building)
    detail = {"source": "resident", "description": desc, "report": report_id, "area": where, "photo": photo}
    trig = inc.Trigger(
        key=f"resident|{report_id}",
        category=category,
        type=type,
        severity="minor",
        ts_ms=now_ms,
        location=inc.Location(
            grid=b.grid, compound=compound.id if compound else None, building=building, unit=unit, space=None
        ),
        detail={k: v for k, v in detail.items() if v is not None},
        life_safety=False,  # a person's report, not a sensor alarm: staff raise the severity if needed
    )
    iid = ctx.incidents.raise_or_repeat(conn, result, trig, now_ms).incident_id
    conn.execute("UPDATE resident_reports SET incident_id=? WHERE id=?", (iid, report_id))
    ctx.incidents.append_event(
        conn, result, iid, "reported", now_ms, {"source": "resident", "report": report_id}, actor=ACTOR
    )
    route = dp.grid_route(cfg, b.grid, "resident_report")
    incident = inc.get(conn, iid)
    if route is not None and route.person is not None and incident is not None:
        lc.dispatch_to(conn, result, ctx, incident, route, now_ms, actor=lc.SYSTEM_ACTOR, role=None, by="auto")
    else:
        lc.dispatch_new(conn, result, ctx, iid, now_ms)
    return {"reference": f"R{report_id}", "incident": iid, "has_phone": tel is not None}


def forget_phone(conn: sqlite3.Connection, phone: str) -> dict[str, Any]:
    """A reporter asks to be forgotten (PIPL): their number, their words and their photos go; the
    incidents stay (category, place, times, ratings) so the scorecard still computes. Caller's
    transaction; returns the counts and the photo ids to delete after the commit."""
    rows = conn.execute("SELECT id, incident_id, photo FROM resident_reports WHERE phone=?", (phone,)).fetchall()
    for _rid, iid, _photo in rows:
        if iid is None:
            continue
        detail = conn.execute("SELECT detail FROM incidents WHERE id=?", (iid,)).fetchone()
        d = json.loads(detail[0]) if detail else {}
        d.pop("description", None)
        d.pop("photo", None)
        conn.execute("UPDATE incidents SET detail=? WHERE id=?", (json.dumps(d, ensure_ascii=False), iid))
    reports_n = conn.execute(
        "UPDATE resident_reports SET phone=NULL, description='', area=NULL, photo=NULL WHERE phone=?", (phone,)
    ).rowcount
    requests_n = conn.execute("UPDATE evaluation_requests SET phone=NULL WHERE phone=?", (phone,)).rowcount
    return {"reports": reports_n, "requests": requests_n, "photos": [p for _r, _i, p in rows if p]}
