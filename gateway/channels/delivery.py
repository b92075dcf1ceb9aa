"""The thread that empties the ``channel_deliveries`` outbox (rows written by :mod:`gateway.channels.outbox`).

:class:`ChannelDispatcher` runs on its own thread with its own read-only SQLite connection. Each
round it settles rows that cannot wait any longer (:mod:`gateway.channels.policy`), plans the
queue (:mod:`gateway.channels.grouping`), and sends the first ready message whose target's budget
allows it (:mod:`gateway.channels.limiter`); then it plans again, so a new alarm waits at most for
the one message in flight. Outcomes go back through :meth:`Pipeline.call`
(:mod:`gateway.channels.outcomes`). It also sends the daily/weekly e-mail digests.
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

from gateway.channels import dingtalk, email, grouping, outbox, policy, render, sms, wecom
from gateway.channels import limiter as budget
from gateway.channels.base import Outcome
from gateway.channels.limiter import RollingLimiter
from gateway.channels.outcomes import ACTOR, HEALTH_TYPE, Fate, Recorder
from gateway.channels.wecom_app import WecomAppClient
from gateway.channels.wecom_token import APP_TARGET
from gateway.core import incidents as inc
from gateway.core.workers import ReaderThread
from gateway.tickets import assignment as dp

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.channel_settings import ChannelSettings
    from gateway.core.contract import BatchResult

# Kept importable from here: the app, the console's catalog test and older callers name them so.
queue_channel_messages = outbox.queue_channel_messages
__all__ = ["ACTOR", "HEALTH_TYPE", "ChannelDispatcher", "queue_channel_messages"]

log = logging.getLogger("gateway.channels")

_ROW_COLS = (
    "d.id, d.incident_id, d.event, d.channel, d.target, d.person, d.group_key, d.priority, d.created_ms, d.next_ms,"
    " d.attempts, d.mentions, d.chain, i.severity, i.life_safety"
)
VENDOR_WINDOW_S = 60.0  # the services' block times (WeCom 60 s, DingTalk 600 s) are in their minute


def _row(r: Sequence[Any]) -> grouping.Row:
    return grouping.Row(
        id=int(r[0]), incident_id=str(r[1]), event=str(r[2]), channel=str(r[3]), target=str(r[4]),
        person=r[5], key=str(r[6]), priority=int(r[7]), created_ms=int(r[8]), next_ms=int(r[9]),
        attempts=int(r[10]), mentions=json.loads(r[11] or "[]"), chain=json.loads(r[12] or "[]"),
        severity=str(r[13] or ""), life_safety=bool(r[14]),
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
        self.recorder = Recorder(cfg, self.incidents)
        self.clock = clock
        self.rng = rng
        self.limiters: dict[tuple[str, str], RollingLimiter] = {}
        self.last_sent: dict[str, int] = {}
        self.failures: dict[tuple[str, str], int] = {}
        self.sent = 0
        self.failed_attempts = 0
        self.abandoned = 0
        self._next_wake_ms: int | None = None
        self._digest_retry_ms: dict[str, int] = {}
        self.wecom_app = _app_client(self.s)
        # A reloaded config waits here until the dispatcher's own thread takes it between two sends,
        # so no send ever sees half the old limits and half the new (see take_config).
        self._pending_cfg: SiteConfig | None = None

    # --- thread -----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._take_pending_config()
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

    # --- budget -------------------------------------------------------------------------------------
    @property
    def window_ms(self) -> int:
        return budget.window_ms(self.s)

    def limiter(self, kind: str, target: str) -> RollingLimiter:
        lim = self.limiters.get((kind, target))
        if lim is None:
            app = self.s.wecom_app if kind == "wecom_app" else None
            lim = budget.for_target(self.s, self._rate(kind, target), app.rate_per_hour if app else None)
            self.limiters[(kind, target)] = lim
        return lim

    def _rate(self, kind: str, target: str) -> int:
        if kind == "wecom_app" and self.s.wecom_app is not None:
            return int(self.s.wecom_app.rate_per_min)  # per person (target = their user id)
        if kind in ("wecom", "dingtalk"):
            robot = self.s.robot(kind, target)
            return int(robot.rate_per_min) if robot is not None else 20
        if kind in ("sms", "voice") and self.s.sms is not None:
            return int(self.s.sms.rate_per_min)
        if kind == "email" and self.s.smtp is not None:
            return int(self.s.smtp.rate_per_min)
        return 20

    def timing(self) -> grouping.Timing:
        g = self.s.grouping
        return grouping.Timing(
            group_wait_ms=int(g.group_wait_s * 1000),
            group_interval_ms=int(g.group_interval_s * 1000),
            critical_interval_ms=int(g.critical_interval_s * 1000),
            reminder_interval_ms=int(g.reminder_interval_s * 1000),
            window_ms=self.window_ms,
        )

    # --- reading the queue --------------------------------------------------------------------------
    def pending(self) -> list[grouping.Row]:
        rows = (
            self._read()
            .execute(
                f"SELECT {_ROW_COLS} FROM channel_deliveries d LEFT JOIN incidents i ON i.id = d.incident_id"
                " WHERE d.status='pending' ORDER BY d.priority, d.id LIMIT 5000"
            )
            .fetchall()
        )
        return [_row(r) for r in rows]

    def delivered(self) -> set[tuple[str, str, str, str]]:
        """(incident, channel, target, event) already sent, for the critical incidents still queued."""
        return {
            (str(a), str(b), str(c), str(d))
            for a, b, c, d in self._read().execute(
                "SELECT DISTINCT incident_id, channel, target, event FROM channel_deliveries WHERE status='sent'"
                " AND incident_id IN (SELECT incident_id FROM channel_deliveries WHERE status='pending'"
                " AND priority=0)"
            )
        }

    # --- one round ----------------------------------------------------------------------------------
    def run_once(self) -> int:
        """Send at most one ready message (the first in the queue's order); returns how many were sent (0/1)."""
        now = self.clock()
        rows = self.settle(self.pending(), now)
        ready, wake, normal_waiting = grouping.plan(rows, now, self.last_sent, self.timing(),
                                                    delivered=self.delivered())  # fmt: skip
        for grp in ready:
            if self._stop.is_set():
                break
            lim = self.limiter(grp.channel, grp.target)
            free = lim.free_at(now, grp.slot, normal_waiting=(grp.channel, grp.target) in normal_waiting)
            if free > now:
                wake = free if wake is None else min(wake, free)
                continue
            self.send_group(grp)
            self._next_wake_ms = None
            return 1
        wake = self._digests(now, wake)
        self._next_wake_ms = wake
        return 0

    def settle(self, rows: list[grouping.Row], now: int) -> list[grouping.Row]:
        """Rows that cannot wait for their target: a person's row whose target is known down goes on
        to their next channel; a row queued longer than ``give_up_after_s``, or past ``held_max``
        for its target (oldest non-critical first), is abandoned. Returns the rows still queued."""
        s = self.s
        fates: list[Fate] = []
        give_up = now - int(s.give_up_after_s * 1000)
        per_target: dict[tuple[str, str], list[grouping.Row]] = {}
        for r in rows:
            per_target.setdefault(r.where, []).append(r)
        for where, mine in per_target.items():
            failures = self.failures.get(where, 0)
            overflow = len(mine) - s.held_max
            for r in sorted(mine, key=lambda x: (x.created_ms, x.id)):
                if failures and policy.falls_over(policy.rule_for(s, r), r, failures):
                    fates.append(Fate(r, "failed", fallback=r.chain[0], reason="channel_down", attempted=False))
                elif r.created_ms < give_up:
                    fates.append(Fate(r, "abandoned", reason="give_up_after_s", attempted=False))
                elif overflow > 0 and r.priority != grouping.PRIORITY_IMMEDIATE:
                    fates.append(Fate(r, "abandoned", reason="held_max", attempted=False))
                    overflow -= 1
        if not fates:
            return rows
        failures_by = {f"{k}:{t}": n for (k, t), n in self.failures.items()}
        try:
            self.call(lambda c, res, ts: self.recorder.settle(c, res, fates, ts, failures_by)).result(timeout=30)
        except Exception as exc:  # not recorded: the rows stay pending and are settled next round
            log.error("could not settle %d channel rows: %s", len(fates), exc)
            return rows
        self.abandoned += sum(1 for f in fates if f.state == "abandoned")
        done = {f.row.id for f in fates}
        return [r for r in rows if r.id not in done]

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
        lang = outbox.lang_of(self.cfg)
        mentions = list(dict.fromkeys(m for r in grp.rows for m in r.mentions))
        if not items:
            outcome = Outcome("rejected", None, None, "incident not found")
            msg = None
        else:
            reminder = grp.cls == grouping.REMINDER
            msg = render.render(self.cfg, items, lang=lang, elder_care=self._elder_care(grp),
                                max_listed=self.s.grouping.max_listed, reminder=reminder)  # fmt: skip
            outcome = self._deliver(grp, msg, mentions, incidents, lang)
        # timed at the reply: the service counted the request before it answered
        now = self.clock()
        lim = self.limiter(grp.channel, grp.target)
        lim.record(now, grp.slot)
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
        if grp.channel == "wecom_app":
            if self.wecom_app is None:
                return Outcome("auth", error="wecom_app no longer configured", health_target=APP_TARGET)
            return self.wecom_app.send(grp.target, msg, timeout=timeout)
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
        where = (grp.channel, grp.target)
        lim = self.limiter(*where)
        fates: list[Fate] = []
        health: list[tuple[str, str, int]] = []  # (raise | clear, health target, its failures in a row)
        failures = self.failures.get(where, 0)
        # a whole service's failure (a WeCom app's secret) is counted and reported on its own target
        scope = (grp.channel, outcome.health_target) if outcome.health_target else where
        if outcome.ok:
            for w in dict.fromkeys([where, (grp.channel, APP_TARGET)] if grp.channel == "wecom_app" else [where]):
                if self.failures.pop(w, 0) > 0:
                    health.append(("clear", w[1], 0))
            fates = [Fate(r, "sent") for r in grp.rows]
        elif outcome.kind == "rate_limited":
            # slow down, not a failure: the target waits out the service's block, rows keep their place
            block_ms = int(outcome.block_s * s.rate.window_s / VENDOR_WINDOW_S * 1000) or self.window_ms
            lim.block(now + block_ms)
            for r in grp.rows:
                if r.priority == grouping.PRIORITY_IMMEDIATE and r.person and r.chain:
                    # a person's critical alarm also goes their next way at once (and stays queued here)
                    fates.append(Fate(r, "pending", next_ms=now + block_ms, fallback=r.chain[0], extra_fallback=True))
                else:
                    fates.append(Fate(r, "pending", next_ms=now + block_ms))
        else:
            failures += 1
            self.failures[where] = failures
            scoped = failures
            if scope != where:
                scoped = self.failures[scope] = self.failures.get(scope, 0) + 1
            if outcome.kind == "auth" or scoped >= s.health_after_failures:
                health.append(("raise", scope[1], scoped))
            hold_ms = int(policy.hold_s(s, grp.rows, failures, self.rng(), auth=outcome.kind == "auth") * 1000)
            lim.block(now + hold_ms)
            for r in grp.rows:
                rule = policy.rule_for(s, r)
                if r.chain and (outcome.kind in ("auth", "rejected") or policy.falls_over(rule, r, failures)):
                    fates.append(Fate(r, "failed", fallback=r.chain[0], reason=outcome.kind))
                elif outcome.kind == "rejected":
                    fates.append(Fate(r, "abandoned", reason="rejected"))
                else:
                    fates.append(Fate(r, "pending", next_ms=now + hold_ms))
        released = msg.released if msg is not None else {}
        self.abandoned += sum(1 for f in fates if f.state == "abandoned")

        def write(c: sqlite3.Connection, res: BatchResult, ts: int) -> None:
            self.recorder.attempt(c, res, grp, outcome, fates, released, ts, failures=failures, health=health)

        try:
            self.call(write).result(timeout=30)
        except Exception as exc:  # not recorded: the rows stay pending and are tried again
            log.error("could not record channel delivery %s: %s", grp.rows[0].id, exc)

    def take_config(self, cfg: SiteConfig) -> None:
        """Hand a reloaded config to the dispatcher (any thread); its thread applies it next."""
        self._pending_cfg = cfg
        self._wake.set()

    def _take_pending_config(self) -> None:
        cfg, self._pending_cfg = self._pending_cfg, None
        if cfg is not None:
            self.reconfigured(cfg)

    def reconfigured(self, cfg: SiteConfig) -> None:
        """Take a reloaded config (a fixed robot key, new limits). Called on the writer's side of a
        reload; the queue, the failure counts and each target's sends in its window carry over."""
        old = self.limiters
        if cfg.channels.wecom_app != self.s.wecom_app:  # a new secret: a new token (the old one is the old app's)
            self.wecom_app = _app_client(cfg.channels)
        self.cfg, self.s = cfg, cfg.channels
        self.recorder = Recorder(cfg, self.incidents)
        self.limiters = {}
        for where, lim in old.items():
            self.limiter(*where).take_over(lim)

    # --- status for health views ------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """Per target: consecutive failures, held until, sends in the current window; counters."""
        now = self.clock()
        targets = {}
        for (kind, target), lim in self.limiters.items():
            targets[f"{kind}:{target}"] = {
                "failures": self.failures.get((kind, target), 0),
                "held_until_ms": lim.blocked_until if lim.blocked_until > now else None,
                "in_window": lim.in_window(now),
                "limit": lim.limit,
            }
        out = {"sent": self.sent, "failed_attempts": self.failed_attempts, "abandoned": self.abandoned,
               "targets": targets}  # fmt: skip
        if self.wecom_app is not None:
            out["wecom_app"] = {"token_fetches": self.wecom_app.tokens.fetches, "refreshes": self.wecom_app.refreshes}
        return out

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
        subject, text = email.digest(self._read(), self.cfg, kind, now, lang=outbox.lang_of(self.cfg))
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


def _app_client(s: ChannelSettings) -> WecomAppClient | None:
    """The WeCom application's sender; a refused token is not asked for again before retry_max_s."""
    return WecomAppClient(s.wecom_app, fail_hold_s=float(s.retry_max_s)) if s.wecom_app is not None else None
