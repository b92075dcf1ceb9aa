"""Writing what happened to channel rows (on the writer thread, through ``Pipeline.call``).

Each row ends ``sent``, ``failed`` (it went on to the person's next channel: the new row's
``fallback_of`` names it) or ``abandoned`` (given up: an event on the incident's timeline and
on the channel's health incident); until then it is ``pending``. Every attempt is a
``notify_attempt`` event on each incident in the message. A channel failing
``health_after_failures`` times in a row, answering ``auth``, or abandoning a message raises the
gateway-health incident ``device_health / notify_channel_failed`` (key ``channel|<kind>:<target>``;
a failure that is a whole service's, such as a WeCom application's wrong secret, is the incident of
that service's ``health_target`` instead, once for all its targets); the next success records
``auto_cleared {reason: channel_recovered}`` on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.channels import grouping, outbox
from gateway.channels.base import Outcome
from gateway.core import incidents as inc

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from gateway.core.contract import BatchResult

HEALTH_TYPE = "notify_channel_failed"
ACTOR = "channels"
MAX_NAMED = 20  # incident ids named in one abandonment event on the health incident


@dataclass
class Fate:
    """What to write for one row: its new state, and why."""

    row: grouping.Row
    state: str  # pending | sent | failed | abandoned
    next_ms: int = 0
    fallback: list[str] | None = None  # [kind, target] of the person's next channel
    reason: str = ""  # why failed / abandoned
    attempted: bool = True  # part of the message just sent (else settled without an attempt)
    extra_fallback: bool = False  # keep the row queued and also start the next channel (rate limited)


def redact_target(kind: str, target: str) -> str:
    """Robots by name; phones and addresses shortened on the timeline (138****0001, d***@x.cn)."""
    if kind in ("sms", "voice") and len(target) >= 7:
        return target[:3] + "****" + target[-4:]
    if kind == "email" and "@" in target:
        user, _, dom = target.partition("@")
        return f"{user[:1]}***@{dom}"
    return target


def health_key(kind: str, target: str) -> str:
    return f"channel|{kind}:{target}"


class Recorder:
    def __init__(self, cfg: SiteConfig, incidents: inc.IncidentStore) -> None:
        self.cfg = cfg
        self.incidents = incidents

    # --- an attempt ------------------------------------------------------------------------------
    def attempt(
        self,
        c: sqlite3.Connection,
        res: BatchResult,
        grp: grouping.Group,
        outcome: Outcome,
        fates: Sequence[Fate],
        released: Mapping[str, list[str]],
        ts: int,
        *,
        failures: int,
        health: Sequence[tuple[str, str, int]] = (),  # ("raise" | "clear", health target, its failures)
    ) -> None:
        per_incident: dict[str, dict[str, Any]] = {}
        for f in fates:
            r = f.row
            attempt = r.attempts + 1
            c.execute(
                "UPDATE channel_deliveries SET attempts=?, status=?, next_ms=?, last_error=?, done_ms=?, message_id=?"
                " WHERE id=? AND status='pending'",
                (attempt, f.state, f.next_ms, outcome.error or None, ts if f.state != "pending" else None,
                 grp.rows[0].id, r.id),
            )  # fmt: skip
            started = False
            if f.fallback is not None and f.extra_fallback:
                started = self.spawn_fallback(c, r, ts)  # once per row: a second block starts nothing new
            elif f.fallback is not None:
                self._fallback(c, r, f.fallback, ts)
                started = True
            data = per_incident.setdefault(r.incident_id, {
                "channel": grp.channel, "target": redact_target(grp.channel, grp.target), "delivery": r.id,
                "attempt": attempt, "ok": outcome.ok, "result": outcome.kind, "status": outcome.status,
                "grouped": len(grp.rows), "class": grouping.CLASS_NAMES[grp.cls],
            })  # fmt: skip
            if outcome.errcode is not None:
                data["errcode"] = outcome.errcode
            if outcome.error:
                data["error"] = outcome.error
            if f.state == "pending" and not outcome.ok:
                data["retry_in_s"] = round(max(0, f.next_ms - ts) / 1000, 3)
            if f.state in ("failed", "abandoned"):
                data["gave_up"] = True
            if started and f.fallback is not None:
                data["fallback_to"] = f"{f.fallback[0]}:{redact_target(f.fallback[0], f.fallback[1])}"
        for iid, data in per_incident.items():
            self.incidents.append_event(c, res, iid, "notify_attempt", ts, data, actor=ACTOR)
        abandoned = [f for f in fates if f.state == "abandoned"]
        for f in abandoned:
            self._abandoned_event(c, res, f, ts)
        if outcome.ok:
            self._releases(c, grp, released, ts)
        raised = [(t, n) for action, t, n in health if action == "raise"]
        if abandoned and grp.target not in [t for t, _ in raised]:
            raised.append((grp.target, failures))
        for target, n in raised:
            hid = self._raise_health(c, res, grp.channel, target, outcome, n, ts, whole_kind=target != grp.target)
            if abandoned and target == grp.target:
                self._abandoned_on_health(c, res, hid, grp.channel, grp.target, abandoned, ts)
        for action, target, _ in health:
            if action == "clear":
                self.incidents.auto_clear(c, res, health_key(grp.channel, target), ts, "channel_recovered", ts)

    # --- rows settled without an attempt: the target is known down, or they waited too long ------
    def settle(
        self, c: sqlite3.Connection, res: BatchResult, fates: Sequence[Fate], ts: int, failures: Mapping[str, int]
    ) -> None:
        by_target: dict[tuple[str, str], list[Fate]] = {}
        for f in fates:
            r = f.row
            cur = c.execute(
                "UPDATE channel_deliveries SET status=?, done_ms=?, last_error=? WHERE id=? AND status='pending'",
                (f.state, ts, f.reason, r.id),
            )
            if cur.rowcount == 0:
                continue  # settled meanwhile
            if f.fallback is not None:
                self._fallback(c, r, f.fallback, ts)
                self.incidents.append_event(c, res, r.incident_id, "notify_attempt", ts, {
                    "channel": r.channel, "target": redact_target(r.channel, r.target), "delivery": r.id,
                    "attempt": r.attempts, "ok": False, "result": f.reason, "gave_up": True,
                    "fallback_to": f"{f.fallback[0]}:{redact_target(f.fallback[0], f.fallback[1])}",
                }, actor=ACTOR)  # fmt: skip
            if f.state == "abandoned":
                self._abandoned_event(c, res, f, ts)
                by_target.setdefault(r.where, []).append(f)
        for (kind, target), group in by_target.items():
            reason = Outcome("transient", error=group[0].reason)
            hid = self._raise_health(c, res, kind, target, reason, failures.get(f"{kind}:{target}", 0), ts)
            self._abandoned_on_health(c, res, hid, kind, target, group, ts)

    def spawn_fallback(self, c: sqlite3.Connection, row: grouping.Row, ts: int) -> bool:
        """Start the person's next channel for a row that stays queued (its robot said 'too fast')."""
        if not row.chain:
            return False
        if c.execute("SELECT 1 FROM channel_deliveries WHERE fallback_of=? LIMIT 1", (row.id,)).fetchone():
            return False
        self._fallback(c, row, row.chain[0], ts)
        return True

    # --- helpers ---------------------------------------------------------------------------------
    def _fallback(self, c: sqlite3.Connection, r: grouping.Row, nxt: list[str], ts: int) -> None:
        kind, target = nxt
        incident = inc.get(c, r.incident_id)
        if incident is None:
            return
        g = self.cfg.channels.grouping
        immediate = r.priority == grouping.PRIORITY_IMMEDIATE
        key = grouping.group_key(kind, target, incident, r.event, g.group_by, immediate=immediate,
                                 site=outbox.site_of(self.cfg, incident))  # fmt: skip
        mention = outbox.phone_of(self.cfg, r.person) if kind in ("wecom", "dingtalk") else None
        c.execute(
            "INSERT INTO channel_deliveries(created_ms, incident_id, event_seq, event, channel, target, person,"
            " chain, mentions, group_key, priority, next_ms, fallback_of) VALUES (?,?,"
            " (SELECT event_seq FROM channel_deliveries WHERE id=?),?,?,?,?,?,?,?,?,?,?)",
            (ts, r.incident_id, r.id, r.event, kind, target, r.person, outbox.dumps(r.chain[1:]),
             outbox.dumps([mention] if mention else []), key, r.priority, ts, r.id),
        )  # fmt: skip

    def _abandoned_event(self, c: sqlite3.Connection, res: BatchResult, f: Fate, ts: int) -> None:
        r = f.row
        self.incidents.append_event(c, res, r.incident_id, "notify_abandoned", ts, {
            "channel": r.channel, "target": redact_target(r.channel, r.target), "delivery": r.id,
            "event": r.event, "reason": f.reason, "attempts": r.attempts + (1 if f.attempted else 0),
            "waited_s": round(max(0, ts - r.created_ms) / 1000, 1),
        }, actor=ACTOR)  # fmt: skip

    def _abandoned_on_health(
        self, c: sqlite3.Connection, res: BatchResult, hid: str, kind: str, target: str, fates: Sequence[Fate], ts: int
    ) -> None:
        ids = list(dict.fromkeys(f.row.incident_id for f in fates))
        self.incidents.append_event(c, res, hid, "notify_abandoned", ts, {
            "channel": kind, "target": redact_target(kind, target), "abandoned": len(fates),
            "incidents": ids[:MAX_NAMED], "reason": fates[0].reason,
        }, actor=ACTOR)  # fmt: skip

    def _releases(self, c: sqlite3.Connection, grp: grouping.Group, released: Mapping[str, list[str]], ts: int) -> None:
        for iid, fields in released.items():
            row = c.execute("SELECT resident_id FROM incidents WHERE id=?", (iid,)).fetchone()
            if row is not None and row[0]:
                c.execute(
                    "INSERT INTO personal_releases(ts_ms, incident_id, resident_id, recipient, role, channel, fields)"
                    " VALUES (?,?,?,?,?,?,?)",
                    (ts, iid, row[0], grp.target, None, grp.channel, outbox.dumps(fields)),
                )

    def _raise_health(
        self,
        c: sqlite3.Connection,
        res: BatchResult,
        kind: str,
        target: str,
        outcome: Outcome,
        failures: int,
        ts: int,
        *,
        whole_kind: bool = False,  # the incident is a whole service's (an app): count all its rows
    ) -> str:
        waiting = c.execute(
            "SELECT count(*), min(created_ms) FROM channel_deliveries"
            " WHERE status='pending' AND channel=? AND (target=? OR ?)",
            (kind, target, whole_kind),
        ).fetchone()
        trig = inc.Trigger(
            key=health_key(kind, target),
            category="device_health",
            type=HEALTH_TYPE,
            severity="major",
            ts_ms=ts,
            detail={
                "channel": kind,
                "target": redact_target(kind, target),
                "result": outcome.kind,
                "errcode": outcome.errcode,
                "error": outcome.error,
                "consecutive_failures": failures,
                "waiting": int(waiting[0]),
                "oldest_waiting_ms": waiting[1],
            },
            life_safety=False,
        )
        return self.incidents.raise_or_repeat(c, res, trig, ts).incident_id
