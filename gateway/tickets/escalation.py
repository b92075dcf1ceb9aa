"""SLA deadlines and the escalation ladder (吹哨报到); see docs/tickets.md "Escalation".

Deadlines live in ``ticket_timers`` (wall-clock due times, so they survive a restart and fire on
time after it). The wall clock of a Pi without an RTC is not trusted blindly:

* while running, a :class:`gateway.core.clock.StepDetector` compares wall and monotonic time; a step
  shifts every ticket timer by the step, so elapsed time is effectively measured monotonically;
* at start, a wall clock behind the last one saved (``meta tickets_last_wall``) is a backward
  step of the same kind (fake-hwclock before NTP): timers keep their remaining time;
* rungs outside the community (street office, department) are held while the OS reports the
  clock unsynchronised, and for ``hold_after_step_s`` after any step; community rungs still run.

A missed deadline records ``sla_missed`` and starts the climb; each further rung follows
``escalate_every_s`` after the previous one *fired* (not after the miss), so a gateway that was
down for hours climbs one rung at a time instead of summoning every department at once.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import os
import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from gateway.core import incidents as inc
from gateway.core.clock import StepDetector, mono_ms
from gateway.tickets import assignment as dp
from gateway.tickets import lifecycle as lc

if TYPE_CHECKING:
    from edge_config.ticket_settings import TicketSettings
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.tickets")

OUTSIDE_COMMUNITY = frozenset({"street_office", "department"})
LAST_WALL_KEY = "tickets_last_wall"
MAX_TIMERS_PER_TICK = 100


def system_clock_synced() -> bool:
    """True when the OS says the clock is NTP-synchronised (systemd-timesyncd flag or adjtimex)."""
    if os.path.exists("/run/systemd/timesync/synchronized"):
        return True
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex (208 bytes on 64-bit); modes=0: read only
        state = libc.adjtimex(buf)
    except (OSError, AttributeError):
        return True  # unknown platform: do not hold
    return bool(state != 5)  # TIME_ERROR: clock not synchronised


class ClockGuard:
    """Step detection and the hold of rungs outside the community."""

    def __init__(
        self,
        settings: TicketSettings,
        threshold_ms: int,
        *,
        mono: Callable[[], int] = mono_ms,
        synced: Callable[[], bool] | None = None,
    ) -> None:
        self.settings = settings.escalation
        self.detector = StepDetector(threshold_ms, mono=mono)
        self.mono = mono
        self.synced = synced or system_clock_synced
        self.hold_until_mono = 0
        self.started = False
        self._last_saved = 0
        self.steps: list[int] = []

    def check(self, conn: sqlite3.Connection, now_ms: int) -> None:
        if not self.started:
            self.started = True
            self.detector.check(now_ms)
            row = conn.execute("SELECT value FROM meta WHERE key=?", (LAST_WALL_KEY,)).fetchone()
            last = int(row[0]) if row else None
            if last is not None and now_ms < last - self.detector.threshold_ms:
                self._stepped(conn, now_ms - last, "boot")
            return
        step = self.detector.check(now_ms)
        if step:
            self._stepped(conn, step, "running")
        if abs(now_ms - self._last_saved) >= 60_000:
            self.save(conn, now_ms)

    def save(self, conn: sqlite3.Connection, now_ms: int) -> None:
        self._last_saved = now_ms
        conn.execute(
            "INSERT INTO meta(key, value) VALUES (?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (LAST_WALL_KEY, str(now_ms)),
        )

    def _stepped(self, conn: sqlite3.Connection, step: int, when: str) -> None:
        log.warning("wall clock stepped by %+d ms (%s); shifting ticket deadlines", step, when)
        conn.execute("UPDATE ticket_timers SET due_ms = due_ms + ?", (step,))
        self.steps.append(step)
        self.hold_until_mono = self.mono() + self.settings.hold_after_step_s * 1000

    def hold_reason(self) -> str | None:
        """Why rungs outside the community must wait now, or None."""
        if not self.settings.hold_when_unsynced:
            return None
        if self.mono() < self.hold_until_mono:
            return "clock_step"
        if not self.settings.assume_clock_synced and not self.synced():
            return "clock_unsynchronised"
        return None


def fire_due(conn: sqlite3.Connection, result: BatchResult, ctx: lc.TicketContext, now_ms: int) -> int:
    rows = conn.execute(
        "SELECT key, incident_id, kind, due_ms, data FROM ticket_timers WHERE due_ms <= ? ORDER BY due_ms LIMIT ?",
        (now_ms, MAX_TIMERS_PER_TICK),
    ).fetchall()
    for key, iid, kind, due, data in rows:
        conn.execute("DELETE FROM ticket_timers WHERE key=?", (key,))
        incident = inc.get(conn, iid)
        if incident is None:
            continue
        if kind == "rating":
            if incident["state"] == "resolved":
                # an evaluation request that nobody answered says so: no_response (never a rating)
                reason = str(json.loads(data).get("reason") or "timeout")
                lc.not_rated_close(conn, result, ctx, iid, reason, now_ms)
            continue
        if incident["state"] not in lc.OPEN:
            continue
        if kind in lc.SLA_STAGES:
            stage_missed(conn, result, ctx, incident, kind, int(due), now_ms)
        elif kind == "rung":
            climb(conn, result, ctx, incident, now_ms, json.loads(data))
        elif kind == "renotify":
            renotify(conn, result, ctx, incident, now_ms)
    return len(rows)


_DONE_COL = {"accept": "accepted_ms", "on_site": "on_site_ms", "resolve": "resolved_ms"}


def stage_missed(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: lc.TicketContext,
    incident: Mapping[str, Any],
    stage: str,
    due_ms: int,
    now_ms: int,
) -> None:
    iid = str(incident["id"])
    t = lc.ticket(conn, iid)
    if t is None or t.get(_DONE_COL[stage]) is not None:
        return
    ctx.incidents.append_event(
        conn,
        result,
        iid,
        "sla_missed",
        now_ms,
        {"stage": stage, "due_ms": due_ms, "person": t["assignee"], "team": t["team"]},
        actor=lc.SYSTEM_ACTOR,
    )
    overdue = [*t["overdue"], stage] if stage not in t["overdue"] else t["overdue"]
    lc.ticket_update(conn, iid, now_ms, overdue=overdue)
    if "rung" not in lc.timers(conn, iid):
        climb(conn, result, ctx, incident, now_ms, {})


def rung_recipients(
    ctx: lc.TicketContext, incident: Mapping[str, Any], t: Mapping[str, Any], rung: str, now_ms: int
) -> list[dict[str, Any]]:
    cfg = ctx.cfg
    people: list[str] = []
    if rung == "assignee":
        people = [t["assignee"]] if t.get("assignee") else []
    elif rung == "grid_worker":
        r = dp.grid_route(cfg, dp.grid_of(cfg, incident))
        people = [r.person] if r is not None and r.person else []
    elif rung in ("community_office", "street_office"):
        team = dp.team_of_kind(cfg, rung)
        people = dp.on_duty(cfg, team.id, now_ms)[0] if team is not None else []
    return [{"person": p, "role": dp.role_of(cfg, p)} for p in people]


def climb(
    conn: sqlite3.Connection,
    result: BatchResult,
    ctx: lc.TicketContext,
    incident: Mapping[str, Any],
    now_ms: int,
    data: Mapping[str, Any],
) -> None:
    """Fire the next rung while an SLA stage is overdue; arm the one after."""
    iid = str(incident["id"])
    t = lc.ticket(conn, iid)
    if t is None or not t["overdue"]:
        return
    settings = ctx.settings
    ladder = list(settings.escalation.ladder)
    sla = lc.sla_for(settings, str(incident["category"]), str(incident["severity"]))
    level = int(t["level"])
    skipped: list[str] = []
    while level < len(ladder):
        rung = ladder[level]
        if rung in OUTSIDE_COMMUNITY and ctx.guard is not None:
            reason = ctx.guard.hold_reason()
            if reason is not None:
                if data.get("held") != level:
                    ctx.incidents.append_event(
                        conn,
                        result,
                        iid,
                        "escalation_held",
                        now_ms,
                        {"rung": rung, "level": level, "reason": reason},
                        actor=lc.SYSTEM_ACTOR,
                    )
                lc.ticket_update(conn, iid, now_ms, level=level)
                lc.timer_set(conn, iid, "rung", now_ms + settings.escalation.hold_recheck_s * 1000, {"held": level})
                return
        if rung == "department":
            dep = lc.department_for(settings, incident)
            team = dp.department_team(ctx.cfg, dep) if dep else None
            if team is None:
                skipped.append(rung)
                level += 1
                continue
            ctx.incidents.append_event(
                conn,
                result,
                iid,
                "escalated",
                now_ms,
                {
                    "rung": rung,
                    "level": level + 1,
                    "stages": t["overdue"],
                    "department": dep,
                    "recipients": [{"person": m, "role": dp.role_of(ctx.cfg, m)} for m in team.members],
                    **({"skipped": skipped} if skipped else {}),
                },
                actor=lc.SYSTEM_ACTOR,
            )
            lc.ticket_update(conn, iid, now_ms, level=level + 1)
            # The department becomes the assignee: new deadlines, overdue cleared, climb resets.
            lc.whistle(
                conn, result, ctx, incident, str(dep), now_ms, actor=lc.SYSTEM_ACTOR, role=None, manual=False,
                reason="sla_missed",
            )  # fmt: skip
            return
        recipients = rung_recipients(ctx, incident, t, rung, now_ms)
        if not recipients:
            skipped.append(rung)
            level += 1
            continue
        ctx.incidents.append_event(
            conn,
            result,
            iid,
            "escalated",
            now_ms,
            {
                "rung": rung,
                "level": level + 1,
                "stages": t["overdue"],
                "recipients": recipients,
                **({"skipped": skipped} if skipped else {}),
            },
            actor=lc.SYSTEM_ACTOR,
        )
        watchers = list(t["watchers"])
        for r in recipients:
            if rung != "assignee" and r["person"] not in watchers:
                watchers.append(r["person"])
        lc.ticket_update(conn, iid, now_ms, level=level + 1, watchers=watchers)
        lc.timer_set(conn, iid, "rung", now_ms + sla.escalate_every_s * 1000)
        return
    lc.ticket_update(conn, iid, now_ms, level=level)
    if skipped:
        ctx.incidents.append_event(
            conn,
            result,
            iid,
            "escalated",
            now_ms,
            {"rung": None, "level": level, "stages": t["overdue"], "recipients": [], "skipped": skipped},
            actor=lc.SYSTEM_ACTOR,
        )


def renotify(
    conn: sqlite3.Connection, result: BatchResult, ctx: lc.TicketContext, incident: Mapping[str, Any], now_ms: int
) -> None:
    iid = str(incident["id"])
    t = lc.ticket(conn, iid)
    if t is None or incident["state"] != "dispatched" or not t.get("assignee"):
        return
    n = int(t["renotified"]) + 1
    settings = ctx.settings
    if n > settings.renotify_max:
        return
    ctx.incidents.append_event(
        conn, result, iid, "renotified", now_ms, {"person": t["assignee"], "count": n}, actor=lc.SYSTEM_ACTOR
    )
    lc.ticket_update(conn, iid, now_ms, renotified=n)
    sla = lc.sla_for(settings, str(incident["category"]), str(incident["severity"]))
    lc.timer_set(conn, iid, "renotify", now_ms + lc.renotify_interval(settings, sla) * 1000)
