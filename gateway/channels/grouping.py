"""Storm grouping, rate limits and priority (in the spirit of Alertmanager).

* **Group key**: a notification row's channel target plus the ``grouping.group_by`` fields
  (default compound, category, type, event). Rows with the same key become one message.
* **group_wait**: a group's first message waits until its oldest row is ``group_wait_s`` old, so
  a power cut that takes 200 sensors offline within seconds becomes one message per target.
* **group_interval**: after a group has sent, its next message waits ``group_interval_s``.
* **Immediate**: critical and life-safety incidents get a key of their own, priority 0, no wait,
  and are always planned before every other group.
* **Rate limit**: a rolling-window limiter per target (WeCom and DingTalk allow 20 messages per
  robot per minute, and DingTalk blocks an over-eager robot for 10 minutes). A plain token bucket
  of capacity N refilled at N/min can send 2N within one rolling minute, so the limiter counts the
  sends of the last 60 s instead. ``reserve_for_critical`` of those slots are usable only by
  priority-0 messages: a flood of minor groups can never use up the minute a critical one needs.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

WINDOW_MS = 60_000
PRIORITY_IMMEDIATE = 0


def priority(incident: Mapping[str, Any], immediate_severities: Sequence[str]) -> int:
    """0 = immediate (critical / life-safety), 1 = major, 2 = the rest."""
    if incident.get("life_safety") or incident.get("severity") in immediate_severities:
        return PRIORITY_IMMEDIATE
    return 1 if incident.get("severity") == "major" else 2


def group_key(
    channel: str,
    target: str,
    incident: Mapping[str, Any],
    event: str,
    group_by: Sequence[str],
    *,
    immediate: bool,
    site: Mapping[str, str | None] | None = None,
) -> str:
    """``site`` supplies compound/building/grid when the incident row lacks them (derived)."""
    parts = [f"{channel}:{target}"]
    for f in group_by:
        value = event if f == "event" else (incident.get(f) or (site or {}).get(f))
        parts.append(f"{f}={value or '-'}")
    if immediate:
        parts.append(f"#{incident['id']}|{event}")
    return "|".join(parts)


class RollingLimiter:
    """At most ``limit`` sends in any rolling ``window_ms``; ``blocked_until`` after a 'too fast' reply."""

    def __init__(self, limit: int, window_ms: int = WINDOW_MS) -> None:
        self.limit = limit
        self.window_ms = window_ms
        self.sent: collections.deque[int] = collections.deque()
        self.blocked_until = 0

    def _trim(self, now: int) -> None:
        while self.sent and self.sent[0] <= now - self.window_ms:
            self.sent.popleft()

    def allowance(self, reserve: int, immediate: bool) -> int:
        return self.limit if immediate else max(1, self.limit - reserve)

    def free_at(self, now: int, *, reserve: int = 0, immediate: bool = False) -> int:
        """When the next send is allowed (``now`` if at once)."""
        self._trim(now)
        at = max(now, self.blocked_until)
        allow = self.allowance(reserve, immediate)
        if len(self.sent) >= allow:
            # the (len - allow + 1)-th oldest send must leave the window
            at = max(at, self.sent[len(self.sent) - allow] + self.window_ms)
        return at

    def record(self, now: int) -> None:
        self._trim(now)
        self.sent.append(now)

    def block(self, until: int) -> None:
        self.blocked_until = max(self.blocked_until, until)


@dataclass
class Row:
    id: int
    incident_id: str
    event: str
    channel: str
    target: str
    person: str | None
    key: str
    priority: int
    created_ms: int
    next_ms: int
    attempts: int
    mentions: list[str] = field(default_factory=list)
    chain: list[list[str]] = field(default_factory=list)


@dataclass
class Group:
    key: str
    channel: str
    target: str
    priority: int
    rows: list[Row]
    ready_ms: int

    @property
    def oldest_ms(self) -> int:
        return min(r.created_ms for r in self.rows)


def plan(
    rows: Iterable[Row],
    now: int,
    last_sent: Mapping[str, int],
    *,
    group_wait_ms: int,
    group_interval_ms: int,
    max_rows: int = 500,
) -> tuple[list[Group], int | None]:
    """Groups ready now (priority first, then oldest) and the earliest time another becomes ready."""
    by_key: dict[str, list[Row]] = {}
    wake: int | None = None
    for r in rows:
        if r.next_ms > now:
            wake = r.next_ms if wake is None else min(wake, r.next_ms)
            continue
        by_key.setdefault(r.key, []).append(r)
    ready: list[Group] = []
    for key, members in by_key.items():
        members.sort(key=lambda r: (r.created_ms, r.id))
        first = members[0]
        if first.priority == PRIORITY_IMMEDIATE:
            at = now
        else:
            at = first.created_ms + group_wait_ms
            if key in last_sent:
                at = max(at, last_sent[key] + group_interval_ms)
        g = Group(key, first.channel, first.target, min(m.priority for m in members), members[:max_rows], at)
        if at <= now:
            ready.append(g)
        else:
            wake = at if wake is None else min(wake, at)
    ready.sort(key=lambda g: (g.priority, g.oldest_ms))
    return ready, wake
