"""The ticket state machine: who may do what, in which state (docs/tickets.md "Actions").

Everything here runs inside the caller's transaction on the pipeline's writer thread (through
:meth:`gateway.ingest.pipeline.Pipeline.call` or a processor hook); nothing BEGINs or COMMITs. Every
change appends to ``incident_events`` (state changes via :meth:`IncidentStore.transition`, which
records actor and role), so the timeline stays append-only and the feed sees each step.

States: new -> dispatched -> accepted -> in_progress -> resolved -> evaluated -> closed, plus
cancelled and false_alarm (with a reason) and reopened (resident dissatisfied, rating <= 2, or by
hand), which is re-dispatched at once. Incidents nobody rates are closed "not rated".
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, cast

from gateway.core import incidents as inc
from gateway.core.store import savepoint
from gateway.errors import GatewayError
from gateway.tickets import assignment as dp

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.ticket_settings import Category, SlaRule, TicketSettings
    from gateway.core.contract import BatchResult
    from gateway.tickets.escalation import ClockGuard

SYSTEM_ACTOR = "tickets"

OPEN = ("new", "dispatched", "accepted", "in_progress", "reopened")
STATES = (*OPEN, "resolved", "evaluated", "closed", "cancelled", "false_alarm")
ROLES = (
    "installer",
    "property_staff",
    "eldercare_worker",
    "grid_worker",
    "maintenance",
    "community_office",
    "street_office",
    "department",
    "central_platform",
)
SUPERVISORS = frozenset({"grid_worker", "community_office", "street_office", "central_platform"})
HANDLERS = frozenset(
    {
        "property_staff",
        "eldercare_worker",
        "grid_worker",
        "maintenance",
        "department",
        "community_office",
        "street_office",
    }
)
# Staff who may enter a rating *for* a resident (what the resident said on the phone): marked
# ``proxy_call`` with the caller. Elder-care workers are not among them: they are the ones whose work
# is rated (the worker who resolved an SOS used to rate it ★5). Residents rate through their own
# link (``evaluate_by_resident``, source ``resident_link``). Nobody who worked the incident may rate it.
RATERS = frozenset({"grid_worker", "community_office", "street_office", "central_platform"})
RATING_SOURCES = ("resident_link", "proxy_call")
RESIDENT_ACTOR = "resident"
# Roles whose false_alarm must come from the assignee (or the assignee's team).
_HANDLER_ONLY = frozenset({"property_staff", "eldercare_worker", "maintenance", "department"})
DEPARTMENTS = ("fire", "police", "health", "urban_management", "market_supervision", "housing")
SLA_STAGES = ("accept", "on_site", "resolve")
TIMER_KINDS = (*SLA_STAGES, "rung", "renotify", "rating")


@dataclass(frozen=True, slots=True)
class ActionSpec:
    sources: tuple[str, ...]
    target: str
    roles: frozenset[str]
    assignee_only: bool = False  # the actor must be the assignee or on the assigned team


ACTIONS: dict[str, ActionSpec] = {
    "dispatch": ActionSpec(("new", "reopened", "dispatched"), "dispatched", SUPERVISORS),
    "reassign": ActionSpec(("dispatched", "accepted", "in_progress", "reopened"), "dispatched", SUPERVISORS),
    "accept": ActionSpec(("dispatched",), "accepted", HANDLERS, assignee_only=True),
    "start": ActionSpec(("accepted",), "in_progress", HANDLERS, assignee_only=True),
    "resolve": ActionSpec(("accepted", "in_progress"), "resolved", HANDLERS, assignee_only=True),
    "evaluate": ActionSpec(("resolved",), "evaluated", RATERS),
    "close": ActionSpec(("resolved", "evaluated"), "closed", SUPERVISORS),
    "cancel": ActionSpec(OPEN, "cancelled", SUPERVISORS),
    "false_alarm": ActionSpec(OPEN, "false_alarm", HANDLERS | SUPERVISORS | {"installer"}),
    "reopen": ActionSpec(("resolved", "evaluated", "closed"), "reopened", SUPERVISORS),
    "whistle": ActionSpec(OPEN, "dispatched", SUPERVISORS),
}


class TicketError(GatewayError):
    """A refused action. ``code``: not_found (404) | unknown_action, invalid (400) | forbidden,
    not_assignee, rater_involved (403) | illegal_transition, request_id_reused, conflict (409)."""

    code = "ticket_refused"  # each instance sets its own (one of STATUS's keys)

    STATUS: ClassVar[dict[str, int]] = {
        "not_found": 404,
        "unknown_action": 400,
        "invalid": 400,
        "forbidden": 403,
        "not_assignee": 403,
        "illegal_transition": 409,
        "request_id_reused": 409,
        "conflict": 409,
        "rater_involved": 403,
    }

    def __init__(self, code: str, message: str, current_state: str | None = None, allowed: Iterable[str] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = self.STATUS.get(code, 400)
        self.message = message
        self.current_state = current_state
        self.allowed = list(allowed)

    @property
    def allowed_actions(self) -> list[str]:
        return self.allowed

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.message,
            "current_state": self.current_state,
            "allowed_actions": self.allowed,
        }

    def response_detail(self) -> dict[str, Any]:
        """The API body's ``detail``: what a client needs to offer the actions still possible."""
        return {
            "code": self.code,
            "message": self.message,
            "current_state": self.current_state,
            "allowed": list(self.allowed),
        }


def allowed_actions(state: str, role: str | None = None) -> list[str]:
    """Actions possible in ``state`` (for ``role``, or for anyone when None), in table order."""
    return [a for a, s in ACTIONS.items() if state in s.sources and (role is None or role in s.roles)]


@dataclass
class TicketContext:
    """What the ticket functions need besides the connection: config, incident writer, clock guard."""

    cfg: SiteConfig
    incidents: inc.IncidentStore
    guard: ClockGuard | None = None  # None: never hold
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def settings(self) -> TicketSettings:
        return self.cfg.tickets


# Any: whatever JSON-serialisable value is stored
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


# --- ticket rows and timers ------------------------------------------------------------------------
_TICKET_COLS = (
    "incident_id, assignee, team, assignee_role, dispatched_ms, accepted_ms, on_site_ms, resolved_ms, rating,"
    " rated_ms, level, overdue, watchers, summons, renotified, reopened, updated_ms"
)
_TICKET_NAMES = tuple(c.strip() for c in _TICKET_COLS.split(","))


def ticket(conn: sqlite3.Connection, incident_id: str) -> dict[str, Any] | None:
    row = conn.execute(f"SELECT {_TICKET_COLS} FROM tickets WHERE incident_id=?", (incident_id,)).fetchone()
    if row is None:
        return None
    out = dict(zip(_TICKET_NAMES, row, strict=True))
    for k in ("overdue", "watchers", "summons"):
        out[k] = json.loads(out[k])
    return out


# Any: column values are sqlite parameters
def ticket_update(conn: sqlite3.Connection, incident_id: str, now_ms: int, **cols: Any) -> None:
    conn.execute(
        "INSERT INTO tickets(incident_id, updated_ms) VALUES (?,?) ON CONFLICT(incident_id) DO NOTHING",
        (incident_id, now_ms),
    )
    if not cols:
        return
    vals = [_dumps(v) if isinstance(v, list | dict) else v for v in cols.values()]
    sets = ", ".join(f"{k}=?" for k in cols)
    conn.execute(f"UPDATE tickets SET {sets}, updated_ms=? WHERE incident_id=?", (*vals, now_ms, incident_id))


def timer_set(
    conn: sqlite3.Connection, incident_id: str, kind: str, due_ms: int, data: Mapping[str, Any] | None = None
) -> None:
    conn.execute(
        "INSERT INTO ticket_timers(key, incident_id, kind, due_ms, data) VALUES (?,?,?,?,?)"
        " ON CONFLICT(key) DO UPDATE SET due_ms=excluded.due_ms, data=excluded.data",
        (f"{incident_id}|{kind}", incident_id, kind, due_ms, _dumps(dict(data or {}))),
    )


def timer_clear(conn: sqlite3.Connection, incident_id: str, *kinds: str) -> None:
    kinds = kinds or TIMER_KINDS
    conn.executemany("DELETE FROM ticket_timers WHERE key=?", [(f"{incident_id}|{k}",) for k in kinds])


def timers(conn: sqlite3.Connection, incident_id: str) -> dict[str, int]:
    return {
        k: int(d) for k, d in conn.execute("SELECT kind, due_ms FROM ticket_timers WHERE incident_id=?", (incident_id,))
    }


# --- SLA -----------------------------------------------------------------------------------------
def sla_for(settings: TicketSettings, category: str, severity: str) -> SlaRule:
    """Most specific SLA rule: category+severity > category > severity > * (then built-in defaults)."""
    from edge_config.ticket_settings import _default_sla

    for rules in (settings.sla, _default_sla()):
        for cat, sev in ((category, severity), (category, "*"), ("*", severity), ("*", "*")):
            for r in rules:
                if r.category == cat and r.severity == sev:
                    return r
    raise LookupError("no SLA rule")  # unreachable: the defaults end with */*


def renotify_interval(settings: TicketSettings, sla: SlaRule) -> int:
    return int(sla.renotify_s or settings.renotify_s)


# --- state changes ---------------------------------------------------------------------------------
def transition(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: TicketContext,
    incident_id: str,
    to: str,
    now_ms: int,
    *,
    actor: str,
    role: str | None,
    data: Mapping[str, Any],
) -> None:
    """IncidentStore.transition; re-opening when a newer incident holds the same key keeps it keyless."""
    try:
        with savepoint(conn, "ticket_transition"):
            ctx.incidents.transition(conn, result, incident_id, to, now_ms, now_ms, actor=actor, role=role, data=data)
    except sqlite3.IntegrityError:
        row = conn.execute("SELECT state, key FROM incidents WHERE id=?", (incident_id,)).fetchone()
        other = conn.execute("SELECT id FROM incidents WHERE open_key=?", (row[1],)).fetchone()
        conn.execute("UPDATE incidents SET state=?, updated_ms=? WHERE id=?", (to, now_ms, incident_id))
        ctx.incidents.append_event(
            conn,
            result,
            incident_id,
            "state_changed",
            now_ms,
            {"from": row[0], "to": to, **data, "open_key_held_by": other[0] if other else None},
            actor=actor,
            role=role,
        )


def state_of(conn: sqlite3.Connection, incident_id: str) -> str:
    row = conn.execute("SELECT state FROM incidents WHERE id=?", (incident_id,)).fetchone()
    if row is None:
        raise TicketError("not_found", f"no incident {incident_id}")
    return str(row[0])


def dispatch_to(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: TicketContext,
    incident: Mapping[str, Any],
    route: dp.Route,
    now_ms: int,
    *,
    actor: str,
    role: str | None,
    by: str,
    note: str | None = None,
) -> None:
    """Assign ``route`` (new SLA deadlines from now) and move the incident to ``dispatched``."""
    iid = str(incident["id"])
    state = state_of(conn, iid)
    if state != "dispatched":
        transition(
            conn,
            result,
            ctx,
            iid,
            "dispatched",
            now_ms,
            actor=actor,
            role=role,
            data=_clean({"action": by, "note": note}),
        )
    sla = sla_for(ctx.settings, str(incident["category"]), str(incident["severity"]))
    due = {"accept": now_ms + sla.accept_s * 1000}
    if sla.on_site_s:
        due["on_site"] = now_ms + sla.on_site_s * 1000
    if sla.resolve_s:
        due["resolve"] = now_ms + sla.resolve_s * 1000
    ticket_update(
        conn,
        iid,
        now_ms,
        assignee=route.person,
        team=route.team,
        assignee_role=route.role,
        dispatched_ms=now_ms,
        accepted_ms=None,
        on_site_ms=None,
        resolved_ms=None,
        overdue=[],
        renotified=0,
    )
    timer_clear(conn, iid)
    for stage, t in due.items():
        timer_set(conn, iid, stage, t)
    if ctx.settings.renotify_max > 0:
        timer_set(conn, iid, "renotify", now_ms + renotify_interval(ctx.settings, sla) * 1000)
    ctx.incidents.append_event(
        conn,
        result,
        iid,
        "dispatched",
        now_ms,
        _clean(
            {
                "person": route.person,
                "team": route.team,
                "person_role": route.role,
                "rule": route.rule,
                "by": by,
                "note": note,
                "sla": {"accept_s": sla.accept_s, "on_site_s": sla.on_site_s, "resolve_s": sla.resolve_s},
                "due_ms": due,
                **dict(route.detail),
            }
        ),
        actor=actor,
        role=role,
    )


def dispatch_new(
    conn: sqlite3.Connection, result: BatchResult, ctx: TicketContext, incident_id: str, now_ms: int
) -> bool:
    """Route a new incident automatically; False (and a ``dispatch_failed`` event) if nobody fits."""
    incident = inc.get(conn, incident_id)
    if incident is None or incident["state"] != "new":
        return False
    r = dp.route(ctx.cfg, incident, now_ms)
    if r is None or r.person is None:
        ctx.incidents.append_event(
            conn, result, incident_id, "dispatch_failed", now_ms, {"reason": "nobody configured"}, actor=SYSTEM_ACTOR
        )
        return False
    dispatch_to(conn, result, ctx, incident, r, now_ms, actor=SYSTEM_ACTOR, role=None, by="auto")
    return True


def department_for(settings: TicketSettings, incident: Mapping[str, Any]) -> str | None:
    esc = settings.escalation
    dep = esc.departments_by_type.get(str(incident.get("type")))
    # the keys are the Category literals; a stored incident's category is a plain str
    return dep or esc.departments_by_category.get(cast("Category", str(incident.get("category"))))


def whistle(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: TicketContext,
    incident: Mapping[str, Any],
    department: str,
    now_ms: int,
    *,
    actor: str,
    role: str | None,
    manual: bool,
    reason: str | None = None,
) -> bool:
    """吹哨报到: summon ``department``; its team becomes the assignee (acceptance tracked like anyone's)."""
    team = dp.department_team(ctx.cfg, department)
    r = dp.route_team(ctx.cfg, team.id, now_ms, "whistle", department=department) if team is not None else None
    if r is None:
        if manual:
            raise TicketError("invalid", f"no team of kind department for {department!r} in the site config")
        return False
    iid = str(incident["id"])
    t = ticket(conn, iid) or {}
    summons = [*t.get("summons", []), {"department": department, "team": r.team, "ms": now_ms, "manual": manual}]
    ctx.incidents.append_event(
        conn,
        result,
        iid,
        "whistle",
        now_ms,
        _clean({"department": department, "team": r.team, "person": r.person, "manual": manual, "reason": reason}),
        actor=actor,
        role=role,
    )
    ticket_update(conn, iid, now_ms, summons=summons)
    dispatch_to(conn, result, ctx, incident, r, now_ms, actor=actor, role=role, by="whistle", note=reason)
    return True


def rateable(settings: TicketSettings, incident: Mapping[str, Any]) -> bool:
    """Rated categories; and whatever a resident reported, whatever its category: the reporter evaluates."""
    detail = incident.get("detail")
    by_resident = isinstance(detail, Mapping) and detail.get("source") == "resident"
    return by_resident or str(incident.get("category")) in settings.rated_categories


def not_rated_close(
    conn: sqlite3.Connection, result: BatchResult, ctx: TicketContext, incident_id: str, reason: str, now_ms: int
) -> None:
    ctx.incidents.append_event(conn, result, incident_id, "not_rated", now_ms, {"reason": reason}, actor=SYSTEM_ACTOR)
    timer_clear(conn, incident_id)
    transition(
        conn,
        result,
        ctx,
        incident_id,
        "closed",
        now_ms,
        actor=SYSTEM_ACTOR,
        role=None,
        data={"action": "auto_close", "reason": "not_rated"},
    )


def after_resolved(
    conn: sqlite3.Connection, result: BatchResult, ctx: TicketContext, incident_id: str, now_ms: int
) -> None:
    """Await the resident's rating (timeout -> not rated), or close at once when nobody rates."""
    incident = inc.get(conn, incident_id) or {}
    timer_clear(conn, incident_id)
    if rateable(ctx.settings, incident):
        timer_set(conn, incident_id, "rating", now_ms + int(ctx.settings.rating_timeout_h * 3_600_000))
    else:
        not_rated_close(conn, result, ctx, incident_id, "no_rater", now_ms)


def auto_resolve(
    conn: sqlite3.Connection, result: BatchResult, ctx: TicketContext, incident_id: str, reason: str, now_ms: int
) -> None:
    """The condition cleared before anyone accepted: resolved by the rules, closed not rated."""
    transition(
        conn,
        result,
        ctx,
        incident_id,
        "resolved",
        now_ms,
        actor=inc.RULES_ACTOR,
        role=None,
        data={"action": "auto_resolve", "reason": reason},
    )
    ticket_update(conn, incident_id, now_ms, resolved_ms=now_ms, overdue=[])
    not_rated_close(conn, result, ctx, incident_id, "auto_cleared", now_ms)


def _clean(d: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _text(data: Mapping[str, Any], key: str, limit: int, *, required: bool = False) -> str | None:
    v = data.get(key)
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise TicketError("invalid", f"{key} is required (1-{limit} characters)")
        return None
    if not isinstance(v, str) or len(v) > limit:
        raise TicketError("invalid", f"{key} must be text of at most {limit} characters")
    return v.strip()


def snapshot(conn: sqlite3.Connection, incident_id: str, role: str | None = None) -> dict[str, Any]:
    """The incident with its ticket, deadlines and the actions ``role`` may take now."""
    incident = inc.get(conn, incident_id)
    if incident is None:
        raise TicketError("not_found", f"no incident {incident_id}")
    incident["ticket"] = ticket(conn, incident_id)
    incident["deadlines"] = timers(conn, incident_id)
    incident["allowed_actions"] = allowed_actions(incident["state"], role)
    return incident


# --- actions -----------------------------------------------------------------------------------------
def apply_action(
    conn: sqlite3.Connection,
    result: BatchResult,
    incident_id: str,
    action: str,
    *,
    actor: str,
    role: str,
    note: str | None = None,
    request_id: str | None = None,
    data: Mapping[str, Any] | None = None,
    now_ms: int,
    ctx: TicketContext,
) -> dict[str, Any]:
    """Apply ``action`` by ``actor`` (acting as ``role``); returns the incident after it.

    Raises :class:`TicketError`. A ``request_id`` seen before returns the stored result unapplied.
    """
    if request_id is not None:
        row = conn.execute(
            "SELECT incident_id, action, result FROM ticket_requests WHERE request_id=?", (request_id,)
        ).fetchone()
        if row is not None:
            if (row[0], row[1]) != (incident_id, action):
                raise TicketError("request_id_reused", f"request id {request_id} was used for another action")
            return dict(json.loads(row[2]))
    spec = ACTIONS.get(action)
    if spec is None:
        raise TicketError("unknown_action", f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    incident = inc.get(conn, incident_id)
    if incident is None:
        raise TicketError("not_found", f"no incident {incident_id}")
    state = incident["state"]
    if role not in ROLES:
        raise TicketError("forbidden", f"unknown role {role!r}", state, [])
    if state not in spec.sources:
        allowed = allowed_actions(state, role)
        raise TicketError(
            "illegal_transition",
            f"cannot {action} an incident in state {state}; allowed for {role}: {', '.join(allowed) or 'none'}",
            state,
            allowed,
        )
    if action == "evaluate":
        # checked before the role, so the one who did the work hears exactly why (not just "forbidden")
        refuse_involved(conn, incident_id, actor, state)
    if role not in spec.roles:
        raise TicketError("forbidden", f"role {role} may not {action}", state, allowed_actions(state, role))
    note = _text({"note": note}, "note", 1000)
    d = dict(data or {})
    t = ticket(conn, incident_id) or {}
    if spec.assignee_only or (action == "false_alarm" and role in _HANDLER_ONLY):
        members = dp.team_members(ctx.cfg, t.get("team"))
        if actor != t.get("assignee") and actor not in members:
            raise TicketError(
                "not_assignee",
                f"{actor} is not the assignee ({t.get('assignee')}) nor on team {t.get('team')}",
                state,
                allowed_actions(state, role),
            )
    if action == "false_alarm" and role == "installer" and incident["life_safety"]:
        raise TicketError("forbidden", "an installer may not dismiss a life-safety incident", state, [])
    base = {"action": action, "note": note}
    now = now_ms
    if action in ("dispatch", "reassign"):
        to = d.get("to")
        if to is None and action == "dispatch":
            r = dp.route(ctx.cfg, incident, now)
        else:
            if not isinstance(to, str):
                raise TicketError("invalid", "data.to (a staff id) is required", state, allowed_actions(state, role))
            r = dp.person_route(ctx.cfg, to, "manual")
        if r is None or r.person is None:
            raise TicketError("invalid", "nobody to dispatch to (unknown staff id or empty team)", state)
        dispatch_to(conn, result, ctx, incident, r, now, actor=actor, role=role, by=action, note=note)
    elif action == "accept":
        transition(conn, result, ctx, incident_id, "accepted", now, actor=actor, role=role, data=_clean(base))
        ticket_update(
            conn, incident_id, now, accepted_ms=now, overdue=[s for s in t.get("overdue", []) if s != "accept"]
        )
        timer_clear(conn, incident_id, "accept", "renotify")
    elif action == "start":
        transition(conn, result, ctx, incident_id, "in_progress", now, actor=actor, role=role, data=_clean(base))
        ticket_update(
            conn, incident_id, now, on_site_ms=now, overdue=[s for s in t.get("overdue", []) if s != "on_site"]
        )
        timer_clear(conn, incident_id, "on_site")
    elif action == "resolve":
        what = _text(d, "what_done", 1000, required=True)
        photo = _text(d, "photo_ref", 256)
        transition(
            conn,
            result,
            ctx,
            incident_id,
            "resolved",
            now,
            actor=actor,
            role=role,
            data=_clean({**base, "what_done": what, "photo_ref": photo}),
        )
        ticket_update(conn, incident_id, now, resolved_ms=now, on_site_ms=t.get("on_site_ms") or now, overdue=[])
        after_resolved(conn, result, ctx, incident_id, now)
    elif action == "evaluate":
        rating = d.get("rating")
        if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
            raise TicketError("invalid", "data.rating must be an integer 1-5", state, allowed_actions(state, role))
        comment = _text(d, "comment", 500)
        solved = d.get("solved", True)
        if not isinstance(solved, bool):
            raise TicketError("invalid", "data.solved must be true or false", state, allowed_actions(state, role))
        _evaluate(
            conn, result, ctx, incident, t, now, actor=actor, role=role, note=note,
            data={"rating": rating, "solved": solved, "comment": comment, "source": "proxy_call", "caller": actor},
        )  # fmt: skip
    elif action == "close":
        if state == "resolved":
            ctx.incidents.append_event(
                conn, result, incident_id, "not_rated", now, {"reason": "closed_without_rating"}, actor=actor, role=role
            )
        transition(conn, result, ctx, incident_id, "closed", now, actor=actor, role=role, data=_clean(base))
        timer_clear(conn, incident_id)
    elif action in ("cancel", "false_alarm"):
        reason = _text(d, "reason", 500, required=True)
        transition(
            conn,
            result,
            ctx,
            incident_id,
            spec.target,
            now,
            actor=actor,
            role=role,
            data=_clean({**base, "reason": reason}),
        )
        ticket_update(conn, incident_id, now, overdue=[])
        timer_clear(conn, incident_id)
    elif action == "reopen":
        _reopen(conn, result, ctx, incident, t, now, actor=actor, role=role, reason=_text(d, "reason", 500), note=note)
    elif action == "whistle":
        dep = d.get("department")
        if dep not in DEPARTMENTS:
            raise TicketError(
                "invalid",
                f"data.department must be one of {', '.join(DEPARTMENTS)}",
                state,
                allowed_actions(state, role),
            )
        whistle(conn, result, ctx, incident, str(dep), now, actor=actor, role=role, manual=True, reason=note)
    out = snapshot(conn, incident_id, role)
    if request_id is not None:
        conn.execute(
            "INSERT INTO ticket_requests(request_id, incident_id, action, actor, ts_ms, result) VALUES (?,?,?,?,?,?)",
            (request_id, incident_id, action, actor, now, _dumps(out)),
        )
    return out


def involved(conn: sqlite3.Connection, incident_id: str) -> set[str]:
    """Everyone who worked the incident: assigned to it (any dispatch), accepted, started or resolved it."""
    people: set[str] = set()
    for kind, actor, data in conn.execute(
        "SELECT kind, actor, data FROM incident_events WHERE incident_id=? AND kind IN ('dispatched','state_changed')",
        (incident_id,),
    ):
        d = json.loads(data)
        if kind == "dispatched" and d.get("person"):
            people.add(str(d["person"]))
        elif kind == "state_changed" and d.get("to") in ("accepted", "in_progress", "resolved") and d.get("action"):
            people.add(str(actor))
    return people


def refuse_involved(conn: sqlite3.Connection, incident_id: str, actor: str, state: str) -> None:
    """Owners' evaluations come from the owners, not from the staff who did the work."""
    if actor in involved(conn, incident_id):
        raise TicketError(
            "rater_involved",
            f"{actor} worked on this incident (assigned, accepted or resolved it) and may not evaluate it",
            state,
            [],
        )


def _evaluate(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: TicketContext,
    incident: Mapping[str, Any],
    t: Mapping[str, Any],
    now_ms: int,
    *,
    actor: str,
    role: str | None,
    note: str | None,
    data: Mapping[str, Any],
) -> None:
    """Record a rating (with its source) and reopen when the resident is dissatisfied or not helped."""
    iid = str(incident["id"])
    rating = int(data["rating"])
    transition(
        conn,
        result,
        ctx,
        iid,
        "evaluated",
        now_ms,
        actor=actor,
        role=role,
        data=_clean({"action": "evaluate", "note": note, **data}),
    )
    ticket_update(conn, iid, now_ms, rating=rating, rated_ms=now_ms)
    timer_clear(conn, iid, "rating")
    if rating <= 2 or data.get("solved") is False:
        reason = "dissatisfied" if rating <= 2 else "not_solved"
        _reopen(conn, result, ctx, incident, t, now_ms, actor=actor, role=role, reason=reason, note=note)


def evaluate_by_resident(
    conn: sqlite3.Connection,
    result: BatchResult,
    incident_id: str,
    *,
    solved: bool,
    rating: int,
    comment: str | None,
    request: int,
    recipient: str,
    now_ms: int,
    ctx: TicketContext,
) -> dict[str, Any]:
    """The resident's own evaluation through their link (the caller has consumed the link in this
    transaction). Source ``resident_link``; the actor is ``resident``, never a staff id."""
    incident = inc.get(conn, incident_id)
    if incident is None:
        raise TicketError("not_found", f"no incident {incident_id}")
    state = incident["state"]
    if state != "resolved":
        raise TicketError("illegal_transition", f"this incident is {state}, not waiting for an evaluation", state, [])
    if not isinstance(rating, int) or isinstance(rating, bool) or not 1 <= rating <= 5:
        raise TicketError("invalid", "rating must be an integer 1-5", state, [])
    text = _text({"comment": comment}, "comment", 500)
    t = ticket(conn, incident_id) or {}
    _evaluate(
        conn, result, ctx, incident, t, now_ms, actor=RESIDENT_ACTOR, role=None, note=None,
        data={"rating": rating, "solved": bool(solved), "comment": text, "source": "resident_link",
              "request": request, "recipient": recipient},
    )  # fmt: skip
    return snapshot(conn, incident_id)


def _reopen(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: TicketContext,
    incident: Mapping[str, Any],
    t: Mapping[str, Any],
    now_ms: int,
    *,
    actor: str,
    role: str | None,
    reason: str | None,
    note: str | None,
) -> None:
    iid = str(incident["id"])
    transition(
        conn,
        result,
        ctx,
        iid,
        "reopened",
        now_ms,
        actor=actor,
        role=role,
        data=_clean({"action": "reopen", "reason": reason, "note": note}),
    )
    ticket_update(conn, iid, now_ms, reopened=int(t.get("reopened") or 0) + 1, rating=None, rated_ms=None)
    timer_clear(conn, iid)
    r: dp.Route | None = None
    prev = t.get("assignee")
    if prev:
        p = dp.person_route(ctx.cfg, str(prev), "reopen")
        if p is not None:
            r = dp.Route(p.person, t.get("team") or p.team, p.role, "reopen")
    if r is None:
        r = dp.route(ctx.cfg, incident, now_ms)
    if r is not None and r.person is not None:
        dispatch_to(conn, result, ctx, incident, r, now_ms, actor=actor, role=role, by="reopen", note=note)


def create_manual(
    conn: sqlite3.Connection,
    result: BatchResult,
    *,
    category: str,
    type: str,
    severity: str,
    location: Mapping[str, Any],
    description: str,
    actor: str,
    role: str,
    request_id: str | None = None,
    now_ms: int,
    ctx: TicketContext,
) -> dict[str, Any]:
    """An incident raised by a person (a resident's call, a round): same loop, dispatched at once."""
    if request_id is not None:
        row = conn.execute(
            "SELECT incident_id, action, result FROM ticket_requests WHERE request_id=?", (request_id,)
        ).fetchone()
        if row is not None:
            if row[1] != "create":
                raise TicketError("request_id_reused", f"request id {request_id} was used for another action")
            return dict(json.loads(row[2]))
    if role not in ROLES:
        raise TicketError("forbidden", f"unknown role {role!r}")
    if category not in inc.CATEGORIES:
        raise TicketError("invalid", f"category must be one of {', '.join(inc.CATEGORIES)}")
    if severity not in inc.SEVERITIES:
        raise TicketError("invalid", f"severity must be one of {', '.join(inc.SEVERITIES)}")
    if not isinstance(type, str) or not type.replace("_", "").isalnum() or not type.islower() or len(type) > 48:
        raise TicketError("invalid", "type must be lower-case letters, digits and '_' (e.g. 'noise', 'water_leak')")
    desc = _text({"description": description}, "description", 1000, required=True)
    cfg = ctx.cfg
    loc = dict(location or {})
    building, unit, space = loc.get("building"), loc.get("unit"), loc.get("space") or loc.get("parking_space")
    grid, compound, resident = loc.get("grid"), loc.get("compound"), loc.get("resident")
    if building is not None and cfg.building(building) is None:
        raise TicketError("invalid", f"unknown building {building!r}")
    if unit is not None and (building is None or (b := cfg.building(building)) is None or b.unit(unit) is None):
        raise TicketError("invalid", f"unknown unit {unit!r} (needs its building)")
    if space is not None and cfg.parking_space(space) is None:
        raise TicketError("invalid", f"unknown parking space {space!r}")
    if grid is not None and cfg.grid(grid) is None:
        raise TicketError("invalid", f"unknown grid {grid!r}")
    if compound is not None and cfg.compound(compound) is None:
        raise TicketError("invalid", f"unknown compound {compound!r}")
    if resident is not None:
        res = cfg.resident(resident)
        if res is None:
            raise TicketError("invalid", f"unknown resident {resident!r}")
        building, unit = building or res.building, unit or res.unit
    if not any((building, space, grid, compound)):
        raise TicketError("invalid", "location needs at least one of building, space, grid, compound")
    probe = {"building": building, "space": space, "compound": compound, "grid": grid}
    compound = dp.compound_of(cfg, probe)
    grid = dp.grid_of(cfg, probe)
    key = f"manual|{request_id or uuid.uuid4().hex}"
    detail = _clean(
        {
            "source": "manual",
            "description": desc,
            "reported_by": actor,
            "reporter_role": role,
            "area": _text(loc, "area", 100),
        }
    )
    trig = inc.Trigger(
        key=key,
        category=category,
        type=type,
        severity=severity,
        ts_ms=now_ms,
        location=inc.Location(grid=grid, compound=compound, building=building, unit=unit, space=space),
        resident_id=resident,
        detail=detail,
    )
    raised = ctx.incidents.raise_or_repeat(conn, result, trig, now_ms)
    ctx.incidents.append_event(
        conn,
        result,
        raised.incident_id,
        "reported",
        now_ms,
        {"description": desc, "source": "manual"},
        actor=actor,
        role=role,
    )
    dispatch_new(conn, result, ctx, raised.incident_id, now_ms)
    out = snapshot(conn, raised.incident_id, role)
    if request_id is not None:
        conn.execute(
            "INSERT INTO ticket_requests(request_id, incident_id, action, actor, ts_ms, result) VALUES (?,?,?,?,?,?)",
            (request_id, raised.incident_id, "create", actor, now_ms, _dumps(out)),
        )
    return out


# --- what one person may do now -----------------------------------------------------------------
# The console shows exactly these actions and the API checks the required fields against the same
# table, so the page, the API and apply_action above never disagree about what a button needs.
@dataclass(frozen=True, slots=True)
class ActionField:
    name: str  # "note" travels at the top level of an action request; every other field in ``data``
    kind: str  # text | rating | person | department
    required: bool
    max_len: int | None = None


_NOTE = ActionField("note", "text", False, 1000)
ACTION_FIELDS: dict[str, tuple[ActionField, ...]] = {
    "dispatch": (ActionField("to", "person", False), _NOTE),
    "reassign": (ActionField("to", "person", True), _NOTE),
    "accept": (_NOTE,),
    "start": (_NOTE,),
    "resolve": (ActionField("what_done", "text", True, 1000), _NOTE),
    "evaluate": (
        ActionField("rating", "rating", True),
        ActionField("solved", "yesno", False),  # the resident says the problem is not solved: reopened
        ActionField("comment", "text", False, 500),
        _NOTE,
    ),
    "close": (_NOTE,),
    "cancel": (ActionField("reason", "text", True, 500), _NOTE),
    "false_alarm": (ActionField("reason", "text", True, 500), _NOTE),
    "reopen": (ActionField("reason", "text", False, 500), _NOTE),
    # the note is the whistle's reason (recorded on the whistle event): a department is told why
    "whistle": (ActionField("department", "department", True), ActionField("note", "text", True, 1000)),
}


def handover_candidates(cfg: SiteConfig, incident: Mapping[str, Any], t: Mapping[str, Any], now_ms: int) -> list[str]:
    """Whom a supervisor may hand the incident to: the assigned team, the team automatic routing
    picks for it now, and the grid worker of its grid (the current assignee left out)."""
    out: list[str] = [*dp.team_members(cfg, t.get("team"))]
    r = dp.route(cfg, incident, now_ms)
    if r is not None:
        out += dp.team_members(cfg, r.team) or ([r.person] if r.person else [])
    g = cfg.grid(str(incident.get("grid"))) if incident.get("grid") else None
    if g is not None and g.grid_worker:
        out.append(g.grid_worker)
    current = t.get("assignee")
    return [p for p in dict.fromkeys(out) if p != current and cfg.staff_member(p) is not None]


def offers(
    cfg: SiteConfig,
    incident: Mapping[str, Any],
    t: Mapping[str, Any] | None,
    *,
    role: str,
    actor: str,
    now_ms: int,
    worked_by: Collection[str] = (),
) -> list[dict[str, Any]]:
    """The actions ``actor`` acting as ``role`` may take on ``incident`` now, each with its fields
    (``options`` for people and departments): ACTIONS filtered by the checks apply_action makes
    before it changes anything. ``t`` is the ticket (only ``assignee`` and ``team`` are read);
    ``worked_by``: :func:`involved` (who worked the incident may not evaluate it)."""
    t = t or {}
    state = str(incident["state"])
    if role not in ROLES:
        return []
    out: list[dict[str, Any]] = []
    for action, spec in ACTIONS.items():
        if state not in spec.sources or role not in spec.roles:
            continue
        handler_only = spec.assignee_only or (action == "false_alarm" and role in _HANDLER_ONLY)
        if handler_only and actor != t.get("assignee") and actor not in dp.team_members(cfg, t.get("team")):
            continue
        if action == "false_alarm" and role == "installer" and incident.get("life_safety"):
            continue
        if action == "evaluate" and actor in worked_by:
            continue
        fields: list[dict[str, Any]] = []
        for f in ACTION_FIELDS[action]:
            d: dict[str, Any] = {"name": f.name, "kind": f.kind, "required": f.required, "max_len": f.max_len}
            if f.kind == "person":
                people = handover_candidates(cfg, incident, t, now_ms)
                d["options"] = [{"value": p, "label": _staff_name(cfg, p)} for p in people]
            elif f.kind == "department":
                d["options"] = [{"value": dep} for dep in DEPARTMENTS if dp.department_team(cfg, dep) is not None]
            fields.append(d)
        if any(f["required"] and "options" in f and not f["options"] for f in fields):
            continue  # nobody to hand it to / no department configured: the action could only fail
        out.append({"action": action, "fields": fields})
    return out


def _staff_name(cfg: SiteConfig, staff_id: str) -> str:
    m = cfg.staff_member(staff_id)
    return m.name if m is not None else staff_id
