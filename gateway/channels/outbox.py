"""The channels' outbox writer: which rows a transaction's incident events produce.

:func:`queue_channel_messages` runs in the pipeline's transaction (called by the chain's channel
stage, :mod:`gateway.channels.stage`), so a row commits with the event it announces.
Who: the ticket loop's recipients (``notify.recipients_for``: the assignee, a rung's people, the
department team). How: each person's ``staff[].channels`` in order, narrowed by
``channels.policies``; the first channel gets a row, the rest ride along as the fallback ``chain``.
A person with a WeCom user id (``staff[].wecom_userid``) is reached first by the WeCom application,
directly; when their own list starts with a group robot, that robot still gets its row (the group
sees the alarm, the person @-mentioned, as before) but no longer as the person's first channel:
their fallbacks ride on the application's row, so a failure goes on to SMS without waiting for the
group.
Robots with ``broadcast: true`` get a row of their own for every matching notification; a
person's row for the same robot shares its group key, so both go as one message (the person
@-mentioned) — but stay two rows: when the robot fails, the person's row goes on to their next
channel while the group's row waits for the robot. Critical incidents also go by SMS to the
on-duty assignee; a critical elder-care incident still not accepted when its first escalation
rung fires rings the assignee (voice).
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.channels import grouping
from gateway.core import incidents as inc
from gateway.core.contract import IncidentEvent
from gateway.tickets import assignment as dp
from gateway.tickets import lifecycle as lc
from gateway.tickets import notify as nt

if TYPE_CHECKING:
    from edge_config import SiteConfig
    from edge_config.channel_settings import ChannelSettings, Policy, QuietHours, Robot

CHANNEL_TYPES = ("wecom", "wecom_app", "dingtalk", "sms", "voice", "email")
ROBOTS = ("wecom", "dingtalk")
PERSON_EVENTS = frozenset({"dispatched", "renotified", "escalated", "whistle", "dispatch_failed"})


# Any: whatever JSON-serialisable value is stored
def dumps(obj: Any) -> str:
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
    if kind in ROBOTS:
        return s.robot(kind, target) is not None
    if kind == "wecom_app":
        return s.wecom_app is not None
    if kind in ("sms", "voice"):
        return s.sms is not None
    return kind == "email" and s.smtp is not None


def chain_for(cfg: SiteConfig, person: str, incident: Mapping[str, Any]) -> tuple[list[list[str]], list[QuietHours]]:
    """The person's channels to try in order ([[kind, target], ...]) and their quiet hours."""
    m = cfg.staff_member(person)
    if m is None:
        return [], []
    pol = policy_for(cfg, person, incident)
    # the WeCom application first: a message to the person themself, not an @-mention in a group
    chans = [("wecom_app", m.wecom_userid)] if m.wecom_userid else []
    chans += [(c.type, c.target) for c in m.channels if c.type in CHANNEL_TYPES]
    if pol is not None and pol.channels is not None:
        chans = [c for typ in pol.channels for c in chans if c[0] == typ]
    out = [[kind, target] for kind, target in chans if usable(cfg, kind, target)]
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


def robot_quiet(s: ChannelSettings, kind: str, target: str) -> list[QuietHours]:
    """A robot's own quiet hours (none for other kinds)."""
    robot = s.robot(kind, target) if kind in ROBOTS else None
    return list(robot.quiet_hours) if robot is not None else []


def site_of(cfg: SiteConfig, incident: Mapping[str, Any]) -> dict[str, str | None]:
    return {"compound": dp.compound_of(cfg, incident), "grid": dp.grid_of(cfg, incident)}


class _Targets:
    """The rows of one event, one per (kind, target, person): person None is a robot's broadcast."""

    def __init__(self, cfg: SiteConfig, now_ms: int, immediate: bool) -> None:
        self.cfg, self.now_ms, self.immediate = cfg, now_ms, immediate
        self.items: dict[tuple[str, str, str | None], tuple[list[list[str]], list[str], int]] = {}

    def add(
        self,
        kind: str,
        target: str,
        person: str | None,
        chain: list[list[str]],
        mention: str | None,
        quiet: Sequence[Any],
    ) -> None:
        if (kind, target, person) in self.items:
            return
        due = self.now_ms if self.immediate else (quiet_until(self.cfg, quiet, self.now_ms) or self.now_ms)
        self.items[(kind, target, person)] = (chain, [mention] if mention else [], due)


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
        site = site_of(cfg, incident)
        out = _Targets(cfg, now_ms, immediate)
        add = out.add
        if name in PERSON_EVENTS:
            for r in nt.recipients_for(cfg, ev, t):
                person = r.get("person")
                if not person:
                    continue
                chain, quiet = chain_for(cfg, person, incident)
                if len(chain) > 1 and chain[0][0] == "wecom_app" and chain[1][0] in ROBOTS:
                    rk, rt = chain.pop(1)  # the group still hears of it, beside the person's own message
                    add(rk, rt, person, [], phone_of(cfg, person), [*quiet, *robot_quiet(s, rk, rt)])
                if chain:
                    kind, target = chain[0]
                    mention = phone_of(cfg, person) if kind in ROBOTS else None
                    add(kind, target, person, chain[1:], mention, [*quiet, *robot_quiet(s, kind, target)])
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
        for (kind, target, person), (chain, mentions, due) in out.items.items():
            if kind == "voice":  # one call per incident: a key of its own
                key = f"voice:{target}|#{iid}"
            else:
                key = grouping.group_key(kind, target, incident, name, g.group_by, immediate=immediate, site=site)
            rows.append((now_ms, iid, ev.seq, name, kind, target, person, dumps(chain), dumps(mentions), key,
                         0 if kind == "voice" else prio, due))  # fmt: skip
    if rows:
        conn.executemany(
            "INSERT INTO channel_deliveries(created_ms, incident_id, event_seq, event, channel, target, person,"
            " chain, mentions, group_key, priority, next_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    return len(rows)
