"""Service evaluation from the incident history (docs/tickets.md "Scorecard").

Read-only: works on any connection (the CLI opens the store read-only while the gateway runs).

Unit of account: an *assignment* = one ``dispatched`` event (a person of a team, from then until
the next dispatch of the same incident). Its period is the local-time month/quarter of the
dispatch. Per assignment: acceptance time (dispatch -> accepted), resolution time (dispatch ->
resolved), whether any SLA deadline was missed during it, escalations during it, and — for the
assignment that resolved it — the resident's rating and whether the incident was reopened.

Entities: ``team`` (teams[].id; grid workers as ``grid:<grid>``), ``property_company`` (all duty
teams of the company's compounds), ``compound`` (the company's assignments in that compound: the
district assesses compounds), ``department`` (teams of kind department).

Formula (each item 0-100):
  complaint_handling = 0.7 x SLA compliance % + 0.3 x (100 - reopen rate %)   (SLA % alone if
                       nothing was resolved)
  owner_evaluation   = (weighted mean rating - 1) / 4 x 100                    (none if unrated)
                       weights by the rating's source (tickets.scorecard.rating_weights: the resident's
                       own link 1.0, a staff member entering a phone answer 0.5); ratings entered before
                       sources were recorded count as proxy_call. ``no_response`` is not a rating: it is
                       counted apart and lowers the response rate, never the mean.
  response_rate_pct  = rated / evaluations due (rated, no_response, rating timeout, closed unrated);
                       below min_response_pct owner evaluation is left out of the score and the row is
                       flagged low_response (not scored high on little data).
  contract_fulfilment, on_site_inspection: entered by the central platform (scorecard_inputs)
  score = weighted mean of the items present (weights tickets.scorecard.weights, 25 each)
  year: score = mean of the quarters that have a score; other figures over the whole year.
Flags: summoned if score < summon_below (60); yellow card if score < yellow_below (60); red card
if this period and the previous one (same length) both had a yellow card.
Percentiles: nearest rank (p = the ceil(p x n)-th smallest value).
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import sqlite3
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.ticket_settings import ScorecardSettings, ScoreItem

ITEMS: tuple[ScoreItem, ...] = ("contract_fulfilment", "complaint_handling", "on_site_inspection", "owner_evaluation")
_PERIOD = re.compile(r"^(\d{4})(?:-(0[1-9]|1[0-2])|-Q([1-4]))?$")


def parse_period(period: str) -> tuple[str, int, int]:
    """'2026-03' -> ('month', 2026, 3); '2026-Q4' -> ('quarter', 2026, 4); '2026' -> ('year', 2026, 0)."""
    m = _PERIOD.match(period.strip())
    if m is None:
        raise ValueError(f"period {period!r}: use YYYY-MM, YYYY-Qn or YYYY")
    year = int(m.group(1))
    if m.group(2):
        return "month", year, int(m.group(2))
    if m.group(3):
        return "quarter", year, int(m.group(3))
    return "year", year, 0


def period_bounds(period: str, tz: ZoneInfo) -> tuple[int, int]:
    kind, y, n = parse_period(period)
    if kind == "month":
        start, end = dt.datetime(y, n, 1, tzinfo=tz), _add_months(y, n, 1, tz)
    elif kind == "quarter":
        m = 3 * (n - 1) + 1
        start, end = dt.datetime(y, m, 1, tzinfo=tz), _add_months(y, m, 3, tz)
    else:
        start, end = dt.datetime(y, 1, 1, tzinfo=tz), dt.datetime(y + 1, 1, 1, tzinfo=tz)
    return int(start.timestamp() * 1000), int(end.timestamp() * 1000)


def _add_months(y: int, m: int, k: int, tz: ZoneInfo) -> dt.datetime:
    idx = y * 12 + (m - 1) + k
    return dt.datetime(idx // 12, idx % 12 + 1, 1, tzinfo=tz)


def previous_period(period: str) -> str:
    kind, y, n = parse_period(period)
    if kind == "month":
        return f"{y - 1}-12" if n == 1 else f"{y}-{n - 1:02d}"
    if kind == "quarter":
        return f"{y - 1}-Q4" if n == 1 else f"{y}-Q{n - 1}"
    return str(y - 1)


def percentile(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[max(0, math.ceil(p * len(s)) - 1)]


@dataclass
class Assignment:
    incident_id: str
    team: str | None
    person: str | None
    dispatched_ms: int
    accepted_ms: int | None = None
    resolved_ms: int | None = None
    missed: bool = False
    escalations: int = 0
    rating: int | None = None
    reopened: bool = False
    rating_source: str | None = None  # resident_link | proxy_call
    not_rated: str | None = None  # reason of a not_rated close after this assignment resolved it
    compound: str | None = None


def assignments(conn: sqlite3.Connection, start_ms: int | None = None, end_ms: int | None = None) -> list[Assignment]:
    """Every assignment reconstructed from the append-only timeline (optionally dispatched in [start, end))."""
    by_incident: dict[str, list[tuple[str, int, dict[str, Any]]]] = defaultdict(list)
    for iid, kind, ts, data in conn.execute(
        "SELECT incident_id, kind, ts_ms, data FROM incident_events WHERE incident_id IN"
        " (SELECT DISTINCT incident_id FROM incident_events WHERE kind='dispatched') ORDER BY seq"
    ):
        by_incident[iid].append((kind, int(ts), json.loads(data)))
    compounds = dict(conn.execute("SELECT id, compound FROM incidents"))
    out: list[Assignment] = []
    for iid, evs in by_incident.items():
        cur: Assignment | None = None
        resolver: Assignment | None = None
        for kind, ts, data in evs:
            if kind == "dispatched":
                cur = Assignment(iid, data.get("team"), data.get("person"), ts, compound=compounds.get(iid))
                out.append(cur)
            elif cur is None:
                continue
            elif kind == "sla_missed":
                cur.missed = True
            elif kind == "escalated" and data.get("rung"):
                cur.escalations += 1
            elif kind == "not_rated" and resolver is not None:
                resolver.not_rated = data.get("reason")
            elif kind == "state_changed":
                to = data.get("to")
                if to == "accepted" and cur.accepted_ms is None:
                    cur.accepted_ms = ts
                elif to == "resolved" and data.get("action") == "resolve":
                    cur.resolved_ms = ts
                    resolver = cur
                elif to == "evaluated" and resolver is not None:
                    resolver.rating = data.get("rating")
                    resolver.rating_source = data.get("source") or "proxy_call"  # staff-entered before sources
                elif to == "reopened" and resolver is not None:
                    resolver.reopened = True
    if start_ms is not None and end_ms is not None:
        out = [a for a in out if start_ms <= a.dispatched_ms < end_ms]
    return out


@dataclass
class Entity:
    kind: str  # team | grid | property_company | department
    id: str
    name: str


def entities_of(cfg: SiteConfig, team: str | None) -> list[Entity]:
    """The entities an assignment of ``team`` counts for."""
    if not team:
        return []
    if team.startswith("grid:"):
        g = cfg.grid(team[5:])
        return [Entity("grid", team, g.name if g is not None else team)]
    t = cfg.team(team)
    if t is None:
        return [Entity("team", team, team)]
    out = [Entity("team", t.id, t.name)]
    if t.kind == "property_duty":
        companies = {c.property_company.name for c in cfg.site.compounds if c.property_company.duty_team == t.id}
        if t.compound and (comp := cfg.compound(t.compound)) is not None:
            companies.add(comp.property_company.name)
        out += [Entity("property_company", n, n) for n in sorted(companies)]
    if t.kind == "department" and t.department:
        out.append(Entity("department", t.department, t.name))
    return out


# not_rated reasons that mean "an evaluation was due and none came" (others: nobody rates the category,
# or the condition cleared by itself)
UNANSWERED = ("no_response", "timeout", "closed_without_rating")
DEFAULT_RATING_WEIGHTS = {"resident_link": 1.0, "proxy_call": 0.5}


def evaluation_figures(items: list[Assignment], weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Owner-evaluation inputs: the weighted mean rating, the count by source and the response rate."""
    w = dict(DEFAULT_RATING_WEIGHTS if weights is None else weights)
    rated = [a for a in items if a.rating is not None]
    by_source = {"resident_link": 0, "proxy_call": 0, "no_response": 0, "unanswered_other": 0}
    for a in rated:
        by_source[a.rating_source or "proxy_call"] = by_source.get(a.rating_source or "proxy_call", 0) + 1
    for a in items:
        if a.rating is None and a.not_rated in UNANSWERED:
            by_source["no_response" if a.not_rated == "no_response" else "unanswered_other"] += 1
    pairs = [(float(a.rating or 0), float(w.get(a.rating_source or "proxy_call", 0.0))) for a in rated]
    total = sum(x for _, x in pairs)
    due = len(rated) + by_source["no_response"] + by_source["unanswered_other"]
    return {
        "rated": len(rated),
        "rating_mean": sum(r * x for r, x in pairs) / total if total else None,
        "ratings_by_source": by_source,
        "evaluations_due": due,
        "response_rate_pct": 100.0 * len(rated) / due if due else None,
    }


def metrics(items: list[Assignment], weights: Mapping[str, float] | None = None) -> dict[str, Any]:
    acc = [(a.accepted_ms - a.dispatched_ms) / 1000 for a in items if a.accepted_ms is not None]
    res = [(a.resolved_ms - a.dispatched_ms) / 1000 for a in items if a.resolved_ms is not None]
    resolved = [a for a in items if a.resolved_ms is not None]
    ev = evaluation_figures(items, weights)
    n = len(items)
    sla_pct = 100.0 * sum(1 for a in items if not a.missed) / n if n else None
    reopen_rate = 100.0 * sum(1 for a in resolved if a.reopened) / len(resolved) if resolved else None
    mean_rating = ev["rating_mean"]
    complaint = None
    if sla_pct is not None:
        complaint = sla_pct if reopen_rate is None else 0.7 * sla_pct + 0.3 * (100.0 - reopen_rate)
    return {
        "assignments": n,
        "accepted": len(acc),
        "resolved": len(res),
        "accept_p50_s": percentile(acc, 0.5),
        "accept_p90_s": percentile(acc, 0.9),
        "resolve_p50_s": percentile(res, 0.5),
        "resolve_p90_s": percentile(res, 0.9),
        "sla_pct": sla_pct,
        "escalations": sum(a.escalations for a in items),
        "reopen_rate_pct": reopen_rate,
        **ev,
        "complaint_handling": complaint,
        "owner_evaluation": (mean_rating - 1) / 4 * 100 if mean_rating is not None else None,
    }


def weighted_score(items: Mapping[ScoreItem, float | None], weights: Mapping[ScoreItem, float]) -> float | None:
    present = [(v, float(weights.get(k, 0))) for k, v in items.items() if v is not None and weights.get(k, 0) > 0]
    total = sum(w for _, w in present)
    return sum(v * w for v, w in present) / total if total else None


@dataclass
class Scorecard:
    period: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_table(self) -> str:
        cols = [
            ("kind", "kind"),
            ("entity", "name"),
            ("n", "assignments"),
            ("acc p50", "accept_p50_s"),
            ("acc p90", "accept_p90_s"),
            ("res p50", "resolve_p50_s"),
            ("res p90", "resolve_p90_s"),
            ("SLA%", "sla_pct"),
            ("esc", "escalations"),
            ("reopen%", "reopen_rate_pct"),
            ("rating", "rating_mean"),
            ("resp%", "response_rate_pct"),
            ("res/prx/none", "sources"),
            ("complaint", "complaint_handling"),
            ("owner", "owner_evaluation"),
            ("contract", "contract_fulfilment"),
            ("inspect", "on_site_inspection"),
            ("score", "score"),
            ("flags", "flags"),
        ]
        body = [[_cell(k, r.get("ratings_by_source" if k == "sources" else k)) for _, k in cols] for r in self.rows]
        head = [h for h, _ in cols]
        widths = [max(_width(x) for x in [head[i], *(b[i] for b in body)]) for i in range(len(cols))]
        lines = [f"scorecard {self.period} (times: acc/res = acceptance/resolution, minutes)"]
        lines.append("  ".join(_pad(h, w) for h, w in zip(head, widths, strict=True)))
        lines.append("  ".join("-" * w for w in widths))
        for b in body:
            lines.append("  ".join(_pad(x, w) for x, w in zip(b, widths, strict=True)))
        if not body:
            lines.append("(no assignments in this period)")
        return "\n".join(lines)


# Any: a scorecard row value (number, None, str or list of flags)
def _cell(key: str, v: Any) -> str:
    if v is None:
        return "-"
    if key == "flags":
        return ",".join(v) if v else ""
    if key == "sources":
        return "/".join(str(v.get(k, 0)) for k in ("resident_link", "proxy_call", "no_response"))
    if key.endswith("_s"):
        return f"{v / 60:.1f}"
    if isinstance(v, float):
        return f"{v:.1f}" if key != "rating_mean" else f"{v:.2f}"
    return str(v)


def _width(s: str) -> int:
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)


def _pad(s: str, w: int) -> str:
    return s + " " * (w - _width(s))


def _inputs(conn: sqlite3.Connection, period: str) -> dict[tuple[str, str], dict[str, float]]:
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for kind, entity, item, value in conn.execute(
        "SELECT entity_kind, entity, item, value FROM scorecard_inputs WHERE period=?", (period,)
    ):
        out[(kind, entity)][item] = float(value)
    return out


def _rows(conn: sqlite3.Connection, cfg: SiteConfig, period: str, all_items: list[Assignment]) -> list[dict[str, Any]]:
    tz = ZoneInfo(cfg.gateway.timezone)
    start, end = period_bounds(period, tz)
    groups: dict[tuple[str, str], list[Assignment]] = defaultdict(list)
    names: dict[tuple[str, str], str] = {}
    for a in all_items:
        if not start <= a.dispatched_ms < end:
            continue
        ents = entities_of(cfg, a.team)
        if a.compound and any(e.kind == "property_company" for e in ents) and (c := cfg.compound(a.compound)):
            ents.append(Entity("compound", c.id, c.name))  # the company's work in this compound
        for e in ents:
            groups[(e.kind, e.id)].append(a)
            names[(e.kind, e.id)] = e.name
    for c in cfg.site.compounds:  # every property company and compound is listed, scored or not
        key = ("property_company", c.property_company.name)
        groups.setdefault(key, [])
        names[key] = c.property_company.name
        groups.setdefault(("compound", c.id), [])
        names[("compound", c.id)] = c.name
    inputs = _inputs(conn, period)
    for key in inputs:
        groups.setdefault(key, [])
        names.setdefault(key, key[1])
    sc = cfg.tickets.scorecard
    weights = dict(sc.weights)
    rows = []
    order = {"property_company": 0, "compound": 1, "department": 2, "team": 3, "grid": 4}
    for (kind, eid), items in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 9), kv[0][1])):
        m = metrics(items, {str(k): v for k, v in sc.rating_weights.items()})
        central = inputs.get((kind, eid), {})
        row = {"period": period, "kind": kind, "entity": eid, "name": names[(kind, eid)], **m}
        row["contract_fulfilment"] = central.get("contract_fulfilment")
        row["on_site_inspection"] = central.get("on_site_inspection")
        rate = row["response_rate_pct"]
        row["low_response"] = rate is not None and rate < sc.min_response_pct
        scored = {k: row[k] for k in ITEMS}
        if row["low_response"]:
            scored["owner_evaluation"] = None  # too few answers to stand for the owners
        row["owner_evaluation_scored"] = row["owner_evaluation"] is not None and not row["low_response"]
        row["score"] = weighted_score(scored, weights)
        rows.append(row)
    return rows


def _flag(rows: list[dict[str, Any]], prev: Mapping[tuple[str, str], float | None], s: ScorecardSettings) -> None:
    for r in rows:
        score = r["score"]
        yellow = score is not None and score < s.yellow_below
        p = prev.get((r["kind"], r["entity"]))
        prev_yellow = p is not None and p < s.yellow_below
        r["summoned"] = score is not None and score < s.summon_below
        r["yellow_card"] = yellow
        r["red_card"] = yellow and prev_yellow
        flags = (("summoned", r["summoned"]), ("yellow", yellow), ("RED", r["red_card"]))
        r["flags"] = [f for f, on in (*flags, ("low_response", r.get("low_response", False))) if on]


def _scores(
    conn: sqlite3.Connection, cfg: SiteConfig, period: str, items: list[Assignment]
) -> dict[tuple[str, str], Any]:
    kind, y, _ = parse_period(period)
    if kind != "year":
        return {(r["kind"], r["entity"]): r["score"] for r in _rows(conn, cfg, period, items)}
    quarters = [_scores(conn, cfg, f"{y}-Q{q}", items) for q in range(1, 5)]
    keys = set().union(*(q.keys() for q in quarters))
    out: dict[tuple[str, str], Any] = {}
    for k in keys:
        vals = [q[k] for q in quarters if q.get(k) is not None]
        out[k] = sum(vals) / len(vals) if vals else None
    return out


def compute(conn: sqlite3.Connection, cfg: SiteConfig, period: str) -> Scorecard:
    """The scorecard for ``period`` ('YYYY-MM', 'YYYY-Qn' or 'YYYY'); rows are plain dicts."""
    kind, y, _ = parse_period(period)
    items = assignments(conn)
    rows = _rows(conn, cfg, period, items)
    if kind == "year":
        per_q = [_scores(conn, cfg, f"{y}-Q{q}", items) for q in range(1, 5)]
        for r in rows:
            k = (r["kind"], r["entity"])
            qs = [q.get(k) for q in per_q]
            r["quarters"] = qs
            vals = [v for v in qs if v is not None]
            r["score"] = sum(vals) / len(vals) if vals else None
    prev = _scores(conn, cfg, previous_period(period), items)
    _flag(rows, prev, cfg.tickets.scorecard)
    return Scorecard(period, rows)


def rows_for(card: Scorecard, kinds: Iterable[str]) -> list[dict[str, Any]]:
    ks = set(kinds)
    return [r for r in card.rows if r["kind"] in ks]
