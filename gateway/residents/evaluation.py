"""What an evaluation link may see and do: its own incident, and one rating.

A link names one request (``signed_links.subject = {"request", "incident"}``). :func:`view` shows
what was reported, what was done and by which team — nothing personal of anyone else: no staff
names, no other residents, no device ids. :func:`submit` consumes the link and records the
resident's rating in one transaction (a rollback leaves the link usable; a replay is refused with
``link_used``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.core import incidents as inc
from gateway.core import links
from gateway.errors import GatewayError
from gateway.residents import asks, texts
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult


class ResidentRefused(GatewayError):
    """A resident page's request that cannot be honoured; ``code`` lets the page say why in words."""

    code = "resident_refused"
    STATUS: ClassVar[dict[str, int]] = {
        "evaluation_closed": 409,
        "report_limit": 429,
        "reports_off": 404,
        "invalid": 422,
        "busy": 429,
        "not_available": 404,  # the feature is off on this gateway: nothing there
    }

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = self.STATUS.get(code, 400)


def _request(conn: sqlite3.Connection, link: links.Link) -> tuple[int, str, str, str]:
    req = link.subject.get("request")
    row = conn.execute(
        "SELECT id, incident_id, status, recipient FROM evaluation_requests WHERE id=?", (int(req or 0),)
    ).fetchone()
    if row is None or row[1] != link.subject.get("incident"):
        raise links.LinkRefused("link_unknown", "this link is no longer known to the gateway")
    return int(row[0]), str(row[1]), str(row[2]), str(row[3])


def _handled(conn: sqlite3.Connection, incident_id: str) -> tuple[str | None, int | None]:
    """The last resolution's what-was-done and time."""
    for data, ts in conn.execute(
        "SELECT data, ts_ms FROM incident_events WHERE incident_id=? AND kind='state_changed' ORDER BY seq DESC",
        (incident_id,),
    ):
        d = json.loads(data)
        if d.get("to") == "resolved":
            return (str(d["what_done"]) if d.get("what_done") else None), int(ts)
    return None, None


def view(conn: sqlite3.Connection, cfg: SiteConfig, token: str, lang: str, now_ms: int) -> dict[str, Any]:
    """The page's content for this link (read-only; runs on a reader connection)."""
    link = links.verify(conn, token, "evaluate", now_ms=now_ms)
    req, iid, status, _recipient = _request(conn, link)
    incident = inc.get(conn, iid)
    if incident is None:
        raise links.LinkRefused("link_unknown", "this link is no longer known to the gateway")
    what_done, done_ms = _handled(conn, iid)
    t = lc.ticket(conn, iid) or {}
    detail = incident.get("detail") or {}
    # only a resident's own words are shown back; staff descriptions may name other people
    own = detail.get("description") if detail.get("source") == "resident" else None
    return {
        "open": status == "pending" and incident["state"] == "resolved",
        "incident": {
            "type": incident["type"],
            "type_label": texts.type_label(lang, str(incident["type"])),
            "category": incident["category"],
            "reported_ms": incident["first_ms"],
            "description": own,
            "what_done": what_done,
            "done_by": asks.team_label(cfg, t.get("team"), lang, t.get("assignee_role")),
            "done_ms": done_ms,
        },
        "expires_ms": link.expires_ms,
        "request": req,
    }


def submit(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: lc.TicketContext,
    token: str,
    *,
    solved: bool,
    rating: int,
    comment: str | None,
    now_ms: int,
) -> dict[str, Any]:
    """Consume the link and record the rating (writer thread, one transaction)."""
    link = links.consume(conn, token, "evaluate", now_ms=now_ms)
    req, iid, status, recipient = _request(conn, link)
    incident = inc.get(conn, iid)
    if status != "pending" or incident is None or incident["state"] != "resolved":
        raise ResidentRefused("evaluation_closed", "this incident was already evaluated or closed")
    conn.execute(
        "UPDATE evaluation_requests SET status='answered', answered_ms=?, source='resident_link', phone=NULL"
        " WHERE id=?",
        (now_ms, req),
    )
    out = lc.evaluate_by_resident(
        conn, result, iid, solved=solved, rating=rating, comment=comment, request=req, recipient=recipient,
        now_ms=now_ms, ctx=ctx,
    )  # fmt: skip
    return {"state": out["state"], "reopened": out["state"] != "evaluated"}
