"""Staff channels: the durable ``channel_deliveries`` outbox and the thread that empties it.

:func:`queue_channel_messages` runs in the pipeline's transaction (called by the chain's channel stage,
:mod:`gateway.channels.stage`), so a channel row commits with the event it announces.
Who: the ticket loop's recipients (``notify.recipients_for``: the assignee, a rung's people, the
department team). How: each person's ``staff[].channels`` in order, narrowed by
``channels.policies``; the first channel gets a row, the rest ride along as the fallback ``chain``.
Robots with ``broadcast: true`` get a row for every matching notification; a person-addressed row
for the same robot is merged (one message, the person @-mentioned). Critical incidents also go by
SMS to the on-duty assignee; a critical elder-care incident still not accepted when its first
escalation rung fires rings the assignee (voice).

:class:`ChannelDispatcher` runs on its own thread with its own read-only SQLite connection; it
plans groups (:mod:`gateway.channels.grouping`), sends one message at a time (critical first),
and writes every outcome back through :meth:`Pipeline.call`: the row's status, a
``notify_attempt`` event on each incident in the message, personal-data releases, the fallback
row, and a gateway-health incident (``device_health/notify_channel_failed``) when a channel keeps
failing or says its credentials are wrong. It also sends the daily/weekly e-mail digests.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.channels import dingtalk, email, grouping, render, sms, wecom
from gateway.channels.base import Outcome
from gateway.core import incidents as inc
from gateway.core.contract import IncidentEvent
from gateway.core.workers import ReaderThread
from gateway.tickets import assignment as dp
from gateway.tickets import lifecycle as lc
from gateway.tickets import notify as nt

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.channel_settings import ChannelSettings, GroupingSettings, Policy, QuietHours, Robot
    from gateway.core.contract import BatchResult

log = logging.getLogger("gateway.channels")

CHANNEL_TYPES = ("wecom", "dingtalk", "sms", "voice", "email")
PERSON_EVENTS = frozenset({"dispatched", "renotified", "escalated", "whistle", "dispatch_failed"})
HEALTH_TYPE = "notify_channel_failed"
ACTOR = "channels"


# Any: whatever JSON-serialisable value is stored
def _dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, default=str)


def settings(cfg: SiteConfig) -> ChannelSettings | None:
    s = getattr(cfg, "channels", None)
    return s if s is not None and s.enabled else None


def lang_of(cfg: SiteConfig) -> str:
    s = settings(cfg)
    return str((s.language if s is not None else None) or cfg.gateway.language or "zh")


# --- who and how ----------------------------------------------------------------------------------
def _matches(p: Policy | Robot, incident: Mapping[str, Any]) -> bool:
    return (not p.categories or incident["category"] in p.categories) and (
        not p.severities or incident["severity"] in p.severities
    )


def policy_for(cfg: SiteConfig, person: str, incident: Mapping[str, Any]) -> Policy | None:
    """The person's first matching policy, else their teams' (in team order)."""
    pols = cfg.channels.policies
    mine = [p for p in pols if p.who == person]
    for team in dp.teams_of(cfg, person):
        mine += [p for p in pols if p.who == team.id]
    return next((p for p in mine if _matches(p, incident)), None)


def usable(cfg: SiteConfig, kind: str, target: str) -> bool:
    s = cfg.channels
    if kind in ("wecom", "dingtalk"):
        return s.robot(kind, target) is not None
    if kind in ("sms", "voice"):
        return s.sms is not None
    return kind == "email" and s.smtp is not None


def chain_for(cfg: SiteConfig, person: str, incident: Mapping[str, Any]) -> tuple[list[list[str]], list[QuietHours]]:
    """The person's channels to try in order ([[kind, target], ...]) and their quiet hours."""
    m = cfg.staff_member(person)
    if m is None:
        return [], []
    pol = policy_for(cfg, person, incident)
    chans = [c for c in m.channels if c.type in CHANNEL_TYPES]
    if pol is not None and pol.channels is not None:
        chans = [c for typ in pol.channels for c in chans if c.type == typ]
    out = [[c.type, c.target] for c in chans if usable(cfg, c.type, c.target)]
    return out, (list(pol.quiet_hours) if pol is not None else [])


def phone_of(cfg: SiteConfig, person: str | None, kind: str = "sms") -> str | None:
    m = cfg.staff_member(person) if person else None
    if m is None:
        return None
    for c in m.channels:
        if c.type == kind:
            return str(c.target)
    return str(m.phone) if m.phone else None


def quiet_until(cfg: SiteConfig, windows: Sequence[QuietHours], now_ms: int) -> int | None:
    """End (ms) of the quiet window ``now_ms`` is in, or None."""
    if not windows:
        return None
    tz = ZoneInfo(cfg.gateway.timezone)
    t = dt.datetime.fromtimestamp(now_ms / 1000, tz)
    for w in windows:
        if w.start == w.end or not dp._in_shift(w, t):
            continue
        end = dt.datetime.combine(t.date(), w.end, tz)
        if w.start > w.end and t.time() >= w.start:
            end += dt.timedelta(days=1)
        return int(end.timestamp() * 1000)
    return None


def _site(cfg: SiteConfig, incident: Mapping[str, Any]) -> dict[str, str | None]:
    return {"compound": dp.compound_of(cfg, incident), "grid": dp.grid_of(cfg, incident)}


class _Targets:
    """The rows of one event: (kind, target) -> [person, chain, mentions, next_ms]; one per target."""

    def __init__(self, cfg: SiteConfig, now_ms: int, immediate: bool) -> None:
        self.cfg, self.now_ms, self.immediate = cfg, now_ms, immediate
        self.items: dict[tuple[str, str], list[Any]] = {}

    def add(
        self,
        kind: str,
        target: str,
        person: str | None,
        chain: list[list[str]],
        mention: str | None,
        quiet: Sequence[Any],
    ) -> None:
        entry = self.items.get((kind, target))
        due = self.now_ms if self.immediate else (quiet_until(self.cfg, quiet, self.now_ms) or self.now_ms)
        if entry is None:
            self.items[(kind, target)] = [person, chain, [mention] if mention else [], due]
            return
        if entry[0] is None and person is not None:
            entry[0], entry[1] = person, chain
        if mention and mention not in entry[2]:
            entry[2].append(mention)


def queue_channel_messages(
    conn: sqlite3.Connection, cfg: SiteConfig, events: Sequence[IncidentEvent], now_ms: int
) -> int:
    """Write the channel rows for ``events`` (in the caller's transaction). Returns how many."""
    s = settings(cfg)
    if s is None:
        return 0
    g = s.grouping
    rows: list[tuple[Any, ...]] = []
    cache: dict[str, tuple[dict[str, Any] | None, dict[str, Any] | None]] = {}
    for ev in events:
        if ev.kind not in nt.NOTIFY_KINDS:
            continue
        iid = str(ev.incident_id)
        if iid not in cache:
            cache[iid] = (inc.get(conn, iid), lc.ticket(conn, iid))
        incident, t = cache[iid]
        if incident is None:
            continue
        name = nt.event_name(ev)
        if ev.kind == "state_changed" and name == "dispatched":
            continue  # the 'dispatched' event of the same transaction carries who and why
        prio = grouping.priority(incident, g.immediate_severities)
        immediate = prio == grouping.PRIORITY_IMMEDIATE
        site = _site(cfg, incident)
        out = _Targets(cfg, now_ms, immediate)
        add = out.add
        if name in PERSON_EVENTS:
            for r in nt.recipients_for(cfg, ev, t):
                person = r.get("person")
                if not person:
                    continue
                chain, quiet = chain_for(cfg, person, incident)
                if chain:
                    kind, target = chain[0]
                    mention = phone_of(cfg, person) if kind in ("wecom", "dingtalk") else None
                    if kind in ("wecom", "dingtalk"):
                        robot = s.robot(kind, target)
                        quiet = [*quiet, *(robot.quiet_hours if robot is not None else [])]
                    add(kind, target, person, chain[1:], mention, quiet)
                if (
                    s.sms is not None and s.sms.sms_critical and incident["severity"] == "critical"
                    and name == "dispatched" and (not chain or chain[0][0] != "sms")
                ):  # fmt: skip
                    phone = phone_of(cfg, person)
                    if phone:
                        add("sms", phone, person, [], None, [])
        for kind, robots in (("wecom", s.wecom), ("dingtalk", s.dingtalk)):
            for robot in robots:
                if robot.broadcast and name in robot.events and _matches(robot, incident):
                    add(kind, robot.name, None, [], None, robot.quiet_hours)
        if (
            ev.kind == "escalated" and s.sms is not None and s.sms.voice_eldercare_critical
            and incident["category"] == "eldercare" and incident["severity"] == "critical"
            and incident["state"] == "dispatched" and t is not None and t.get("assignee")
        ):  # fmt: skip
            voiced = conn.execute(
                "SELECT 1 FROM channel_deliveries WHERE incident_id=? AND channel='voice' LIMIT 1", (iid,)
            ).fetchone()
            phone = phone_of(cfg, t["assignee"], "voice")
            if voiced is None and phone:
                add("voice", phone, t["assignee"], [], None, [])
        for (kind, target), (person, chain, mentions, due) in out.items.items():
            key = grouping.group_key(kind, target, incident, name, g.group_by, immediate=immediate or kind == "voice",
                                     site=site)  # fmt: skip
            rows.append((now_ms, iid, ev.seq, name, kind, target, person, _dumps(chain), _dumps(mentions), key,
                         0 if kind == "voice" else prio, due))  # fmt: skip
    if rows:
        conn.executemany(
            "INSERT INTO channel_deliveries(created_ms, incident_id, event_seq, event, channel, target, person,"
            " chain, mentions, group_key, priority, next_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    return len(rows)


# --- the sender ---------------------------------------------------------------------------------
_ROW_COLS = (
    "id, incident_id, event, channel, target, person, group_key, priority, created_ms, next_ms, attempts,"
    " mentions, chain"
)


def _row(r: Sequence[Any]) -> grouping.Row:
    return grouping.Row(
        id=int(r[0]), incident_id=str(r[1]), event=str(r[2]), channel=str(r[3]), target=str(r[4]),
        person=r[5], key=str(r[6]), priority=int(r[7]), created_ms=int(r[8]), next_ms=int(r[9]),
        attempts=int(r[10]), mentions=json.loads(r[11] or "[]"), chain=json.loads(r[12] or "[]"),
    )  # fmt: skip


class ChannelDispatcher(ReaderThread):
    """Sends pending ``channel_deliveries``; outcomes go back through ``call`` (Pipeline.call)."""

    thread_name = "channels"

    def __init__(
        self,
        db_path: str | Path,
        cfg: SiteConfig,
        *,
        call: Callable[[Callable[[sqlite3.Connection, BatchResult, int], Any]], Future[Any]],
        incidents: inc.IncidentStore | None = None,
        clock: Callable[[], int] = lambda: time.time_ns() // 1_000_000,
        rng: Callable[[], float] = random.random,
    ) -> None:
        super().__init__(db_path)
        self.cfg = cfg
        self.s = cfg.channels
        self.call = call
        self.incidents = incidents or inc.IncidentStore(cfg.gateway.id)
        self.clock = clock
        self.rng = rng
        self.limiters: dict[tuple[str, str], grouping.RollingLimiter] = {}
        self.last_sent: dict[str, int] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.sent = 0
        self.failed_attempts = 0
        self._next_wake_ms: int | None = None
        self._digest_retry_ms: dict[str, int] = {}

    # --- thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                n = self.run_once()
            except Exception:
                log.exception("channel dispatcher failed; retrying")
                n = 0
            if n == 0:
                wait = 1.0
                if self._next_wake_ms is not None:
                    wait = max(0.005, min(1.0, (self._next_wake_ms - self.clock()) / 1000))
                self._wake.wait(wait)
                self._wake.clear()

    # --- planning -----------------------------------------------------------------------------------
    def limiter(self, kind: str, target: str) -> grouping.RollingLimiter:
        lim = self.limiters.get((kind, target))
        if lim is None:
            lim = grouping.RollingLimiter(self._rate(kind, target))
            self.limiters[(kind, target)] = lim
        return lim

    def _rate(self, kind: str, target: str) -> int:
        if kind in ("wecom", "dingtalk"):
            robot = self.s.robot(kind, target)
            return int(robot.rate_per_min) if robot is not None else 20
        if kind in ("sms", "voice") and self.s.sms is not None:
            return int(self.s.sms.rate_per_min)
        if kind == "email" and self.s.smtp is not None:
            return int(self.s.smtp.rate_per_min)
        return 20

    def pending(self) -> list[grouping.Row]:
        rows = (
            self._read()
            .execute(
                f"SELECT {_ROW_COLS} FROM channel_deliveries WHERE status='pending' ORDER BY priority, id LIMIT 5000"
            )
            .fetchall()
        )
        return [_row(r) for r in rows]

    def run_once(self) -> int:
        """Send at most one ready message (the most urgent); returns how many were sent (0/1)."""
        now = self.clock()
        g = self.s.grouping
        ready, wake = grouping.plan(
            self.pending(),
            now,
            self.last_sent,
            group_wait_ms=int(g.group_wait_s * 1000),
            group_interval_ms=int(g.group_interval_s * 1000),
        )
        for grp in ready:
            if self._stop.is_set():
                break
            immediate = grp.priority == grouping.PRIORITY_IMMEDIATE
            free = self.limiter(grp.channel, grp.target).free_at(now, reserve=g.reserve_for_critical,
                                                                  immediate=immediate)  # fmt: skip
            if free > now:
                wake = free if wake is None else min(wake, free)
                continue
            self.send_group(grp)
            self._next_wake_ms = None
            return 1
        wake = self._digests(now, wake)
        self._next_wake_ms = wake
        return 0

    # --- sending --------------------------------------------------------------------------------------
    def _elder_care(self, grp: grouping.Group) -> bool:
        if grp.channel in ("wecom", "dingtalk"):
            robot = self.s.robot(grp.channel, grp.target)
            return bool(robot is not None and robot.elder_care)
        return any(dp.role_of(self.cfg, r.person) == "eldercare_worker" for r in grp.rows if r.person)

    def send_group(self, grp: grouping.Group) -> Outcome:
        conn = self._read()
        incidents: dict[str, dict[str, Any]] = {}
        for r in grp.rows:
            if r.incident_id not in incidents:
                found = inc.get(conn, r.incident_id)
                if found is not None:
                    incidents[r.incident_id] = found
        items = [(incidents[r.incident_id], r.event) for r in grp.rows if r.incident_id in incidents]
        lang = lang_of(self.cfg)
        elder = self._elder_care(grp)
        mentions = list(dict.fromkeys(m for r in grp.rows for m in r.mentions))
        now = self.clock()
        if not items:
            outcome = Outcome("rejected", None, None, "incident not found")
            msg = None
        else:
            msg = render.render(self.cfg, items, lang=lang, elder_care=elder, max_listed=self.s.grouping.max_listed)
            outcome = self._deliver(grp, msg, mentions, incidents, lang)
        lim = self.limiter(grp.channel, grp.target)
        lim.record(now)
        if outcome.kind == "rate_limited" and outcome.block_s:
            lim.block(now + int(outcome.block_s * 1000))
        if outcome.ok:
            self.sent += 1
            self.last_sent[grp.key] = now
        else:
            self.failed_attempts += 1
        self._record(grp, outcome, msg, now)
        return outcome

    def _deliver(
        self, grp: grouping.Group, msg: render.Message, mentions: list[str], incidents: Mapping[str, Any], lang: str
    ) -> Outcome:
        s = self.s
        timeout = float(s.http_timeout_s)
        if grp.channel == "wecom":
            robot = s.robot("wecom", grp.target)
            return wecom.send(robot, msg, mentions, timeout=timeout) if robot else Outcome("auth", error="no robot")
        if grp.channel == "dingtalk":
            ding = s.robot("dingtalk", grp.target)
            if ding is None:
                return Outcome("auth", error="robot no longer configured")
            return dingtalk.send(ding, msg, mentions, timeout=timeout)  # signs with the real wall clock
        if grp.channel in ("sms", "voice"):
            if s.sms is None:
                return Outcome("auth", error="sms gateway no longer configured")
            if grp.channel == "voice":
                text = render.voice_text(self.cfg, lang, next(iter(incidents.values())))
                return sms.send(s.sms, grp.target, text, voice=True, timeout=timeout)
            return sms.send(s.sms, grp.target, msg.short, timeout=timeout)
        if grp.channel == "email":
            if s.smtp is None:
                return Outcome("auth", error="smtp no longer configured")
            return email.send_mail(s.smtp, [grp.target], msg.title, msg.text)
        return Outcome("rejected", error=f"unknown channel {grp.channel}")

    def _record(self, grp: grouping.Group, outcome: Outcome, msg: render.Message | None, now: int) -> None:
        s = self.s
        target_key = (grp.channel, grp.target)
        if outcome.ok:
            recovered = self.failures.pop(target_key, 0) > 0
        else:
            self.failures[target_key] = self.failures.get(target_key, 0) + 1
            recovered = False
        raise_health = not outcome.ok and (
            outcome.kind == "auth" or self.failures[target_key] >= s.health_after_failures
        )
        plans: list[tuple[grouping.Row, str, int, float, list[str] | None]] = []
        for r in grp.rows:
            attempt = r.attempts + 1
            if outcome.ok:
                plans.append((r, "sent", attempt, 0.0, None))
                continue
            can_retry = outcome.retriable and attempt < s.max_attempts
            if can_retry and outcome.kind == "rate_limited" and r.priority == grouping.PRIORITY_IMMEDIATE and r.chain:
                can_retry = False  # a critical message does not wait out a block when the person has another channel
            if can_retry:
                if outcome.kind == "rate_limited" and outcome.block_s:
                    delay = outcome.block_s
                else:
                    delay = nt.backoff_s(attempt, s.retry_min_s, s.retry_max_s, self.rng())
                plans.append((r, "pending", attempt, delay, None))
            else:
                plans.append((r, "failed", attempt, 0.0, r.chain[0] if r.chain else None))
        released = msg.released if msg is not None else {}
        g = s.grouping

        def write(c: sqlite3.Connection, res: BatchResult, ts: int) -> None:
            per_incident: dict[str, dict[str, Any]] = {}
            for r, state, attempt, delay, fallback in plans:
                c.execute(
                    "UPDATE channel_deliveries SET attempts=?, status=?, next_ms=?, last_error=?, done_ms=?,"
                    " message_id=? WHERE id=? AND status='pending'",
                    (attempt, state, now + int(delay * 1000), outcome.error or None,
                     ts if state != "pending" else None, grp.rows[0].id, r.id),
                )  # fmt: skip
                if fallback is not None:
                    self._insert_fallback(c, r, fallback, ts, g)
                data = per_incident.setdefault(r.incident_id, {
                    "channel": grp.channel, "target": _redact_target(grp.channel, grp.target),
                    "delivery": r.id, "attempt": attempt, "ok": outcome.ok, "result": outcome.kind,
                    "status": outcome.status, "grouped": len(grp.rows),
                })  # fmt: skip
                if outcome.errcode is not None:
                    data["errcode"] = outcome.errcode
                if outcome.error:
                    data["error"] = outcome.error
                if state == "pending":
                    data["retry_in_s"] = round(delay, 3)
                if state == "failed":
                    data["gave_up"] = True
                if fallback is not None:
                    data["fallback_to"] = f"{fallback[0]}:{_redact_target(fallback[0], fallback[1])}"
            for iid, data in per_incident.items():
                self.incidents.append_event(c, res, iid, "notify_attempt", ts, data, actor=ACTOR)
            if outcome.ok:
                for iid, fields in released.items():
                    row = c.execute("SELECT resident_id FROM incidents WHERE id=?", (iid,)).fetchone()
                    if row is not None and row[0]:
                        c.execute(
                            "INSERT INTO personal_releases(ts_ms, incident_id, resident_id, recipient, role, channel,"
                            " fields) VALUES (?,?,?,?,?,?,?)",
                            (ts, iid, row[0], grp.target, None, grp.channel, _dumps(fields)),
                        )
            key = f"channel|{grp.channel}:{grp.target}"
            if raise_health:
                self._raise_health(c, res, key, grp, outcome, ts)
            elif recovered:
                self.incidents.auto_clear(c, res, key, ts, "channel_recovered", ts)

        try:
            self.call(write).result(timeout=30)
        except Exception as exc:  # not recorded: the rows stay pending and are tried again
            log.error("could not record channel delivery %s: %s", grp.rows[0].id, exc)

    def _insert_fallback(
        self, c: sqlite3.Connection, r: grouping.Row, nxt: list[str], ts: int, g: GroupingSettings
    ) -> None:
        kind, target = nxt
        incident = inc.get(c, r.incident_id)
        if incident is None:
            return
        immediate = r.priority == grouping.PRIORITY_IMMEDIATE
        key = grouping.group_key(kind, target, incident, r.event, g.group_by, immediate=immediate,
                                 site=_site(self.cfg, incident))  # fmt: skip
        mention = phone_of(self.cfg, r.person) if kind in ("wecom", "dingtalk") else None
        c.execute(
            "INSERT INTO channel_deliveries(created_ms, incident_id, event_seq, event, channel, target, person,"
            " chain, mentions, group_key, priority, next_ms, fallback_of) VALUES (?,?,"
            " (SELECT event_seq FROM channel_deliveries WHERE id=?),?,?,?,?,?,?,?,?,?,?)",
            (ts, r.incident_id, r.id, r.event, kind, target, r.person, _dumps(r.chain[1:]),
             _dumps([mention] if mention else []), key, r.priority, ts, r.id),
        )  # fmt: skip

    def _raise_health(
        self, c: sqlite3.Connection, res: BatchResult, key: str, grp: grouping.Group, outcome: Outcome, ts: int
    ) -> None:
        trig = inc.Trigger(
            key=key,
            category="device_health",
            type=HEALTH_TYPE,
            severity="major",
            ts_ms=ts,
            detail={
                "channel": grp.channel,
                "target": _redact_target(grp.channel, grp.target),
                "result": outcome.kind,
                "errcode": outcome.errcode,
                "error": outcome.error,
                "consecutive_failures": self.failures.get((grp.channel, grp.target), 0),
            },
            life_safety=False,
        )
        self.incidents.raise_or_repeat(c, res, trig, ts)

    # --- e-mail digests -------------------------------------------------------------------------------
    def _digests(self, now: int, wake: int | None) -> int | None:
        smtp = self.s.smtp
        if smtp is None or smtp.daily_at is None or not (smtp.digest_recipients or smtp.scorecard_recipients):
            return wake
        tz = ZoneInfo(self.cfg.gateway.timezone)
        t = dt.datetime.fromtimestamp(now / 1000, tz)
        if t.time() < smtp.daily_at:
            return wake
        today = t.date().isoformat()
        kinds = ["daily"] + (["weekly"] if smtp.weekly_day is not None and t.isoweekday() == smtp.weekly_day else [])
        for kind in kinds:
            if self._digest_retry_ms.get(kind, 0) > now:
                continue
            row = self._read().execute("SELECT value FROM meta WHERE key=?", (f"channels_digest_{kind}",)).fetchone()
            if row is not None and row[0] == today:
                continue
            outcome = self.send_digest(kind, now)
            if not outcome.ok:
                self._digest_retry_ms[kind] = now + 300_000
        return wake

    def send_digest(self, kind: str, now: int | None = None) -> Outcome:
        """Build and mail the ``daily``/``weekly`` digest now; records the day in ``meta`` when sent."""
        smtp = self.s.smtp
        if smtp is None:
            return Outcome("auth", error="smtp not configured")
        now = self.clock() if now is None else now
        subject, text = email.digest(self._read(), self.cfg, kind, now, lang=lang_of(self.cfg))
        to = list(smtp.digest_recipients)
        if kind == "weekly":
            to += [r for r in smtp.scorecard_recipients if r not in to]
        outcome = email.send_mail(smtp, to, subject, text)
        day = dt.datetime.fromtimestamp(now / 1000, ZoneInfo(self.cfg.gateway.timezone)).date().isoformat()
        if outcome.ok:
            try:
                self.call(
                    lambda c, r, n: c.execute(
                        "INSERT INTO meta(key, value) VALUES (?, ?)"
                        " ON CONFLICT(key) DO UPDATE SET value=excluded.value",
                        (f"channels_digest_{kind}", day),
                    )
                ).result(timeout=30)
            except Exception as exc:
                log.error("could not record the %s digest: %s", kind, exc)
        else:
            log.warning("%s digest not sent: %s", kind, outcome.error)
        return outcome


def _redact_target(kind: str, target: str) -> str:
    """Robots by name; phones and addresses shortened on the timeline (138****0001, d***@x.cn)."""
    if kind in ("sms", "voice") and len(target) >= 7:
        return target[:3] + "****" + target[-4:]
    if kind == "email" and "@" in target:
        user, _, dom = target.partition("@")
        return f"{user[:1]}***@{dom}"
    return target
